package transforms

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

// keyPairs are three planted pairs, each on its own random text:
//
//   - "prompt": one long prompt answered "Sports and Outdoors." and "Home
//     and Kitchen, because …" (the reported bug: different answers to one
//     prompt, which the prompt's shingles make look alike);
//   - "answer": one long answer under a prompt and its paraphrase (the
//     prompt with a prefix and a suffix);
//   - "label": two unrelated prompts with one short answer, "Positive."
//
// It returns the samples and, per pair, its two ids.
func keyPairs() ([]any, map[string][2]string) {
	rng := rand.New(rand.NewPCG(7, 8))
	long := func() string { return answer(rng) }
	pairs := map[string][2][2]string{}
	p := long()
	pairs["prompt"] = [2][2]string{{p, "Sports and Outdoors."}, {p, "Home and Kitchen, because the product is a chef's knife set."}}
	p, a := long(), long()
	pairs["answer"] = [2][2]string{{p, a}, {"Please answer this: " + p + " Thanks!", a}}
	pairs["label"] = [2][2]string{{long(), "Positive."}, {long(), "Positive."}}
	var out []any
	ids := map[string][2]string{}
	for _, name := range []string{"prompt", "answer", "label"} {
		var pair [2]string
		for i, pa := range pairs[name] {
			msgs := []datasets.Message{{Role: "user", Content: pa[0]}, {Role: "assistant", Content: pa[1]}}
			s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs,
				Source: datasets.Source{Dataset: "t", File: name + ".jsonl", Index: int64(i)}}
			pair[i] = s.ID
			out = append(out, s)
		}
		ids[name] = pair
	}
	return out, ids
}

// TestFuzzyDedupKeys: which planted pairs each key merges. conversation
// and prompt merge the different answers to one long prompt; response and
// turns keep them. All four merge one answer under a paraphrased long
// prompt. Only response merges one short answer to unrelated prompts.
// Each pair merged gives its larger id "D smaller" and its smaller id
// "K smaller"; exact and estimated verification agree here.
func TestFuzzyDedupKeys(t *testing.T) {
	merged := map[dedup.KeyMode][]string{
		"conversation": {"prompt", "answer"},
		"prompt":       {"prompt", "answer"},
		"response":     {"answer", "label"},
		"turns":        {"answer"},
	}
	for _, verify := range []string{"exact", "estimate"} {
		for _, mode := range []dedup.KeyMode{"conversation", "prompt", "response", "turns"} {
			t.Run(fmt.Sprintf("%s_%s", mode, verify), func(t *testing.T) {
				in, ids := keyPairs()
				var want []any
				for _, name := range merged[mode] {
					pr := ids[name]
					lo := min(pr[0], pr[1])
					for i, id := range pr {
						v := "D"
						if id == lo {
							v = "K"
						}
						want = append(want, fmt.Sprintf("%s %s @ %s.jsonl/%d", v, lo, name, i))
					}
				}
				p, s := beam.NewPipelineWithRoot()
				cfg := fuzzyTestConfig()
				cfg.Mode, cfg.Verify = mode, verify
				m, check := FuzzyDedupMarks(s, beam.CreateList(s, in), cfg, "fuzzy_dedup", nil, nil)
				passert.Empty(s, check)
				passert.Equals(s, beam.ParDo(s, verdictWithNode, m.Marks), want...)
				ptest.RunAndValidate(t, p)
			})
		}
	}
}

// verdictWithNode is a mark's verdict and the sample it is about:
// "D survivor @ file/index".
func verdictWithNode(mark string) string {
	o := mark[strings.Index(mark, markStageSep)+len(markStageSep) : strings.LastIndex(mark, markVerdictSep)]
	f := strings.Split(o, "\x00")
	idx, _ := strconv.Atoi(f[2])
	return verdictOf(mark) + " @ " + f[1] + "/" + strconv.Itoa(idx)
}

func init() { register.Function1x1(verdictWithNode) }
