package topics

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// alpacaDir holds model outputs from tatsu-lab/alpaca_eval (see its
// README); tests that read it skip when it is absent. No text from it is
// copied into the project.
const alpacaDir = "../../shared/data/alpaca_eval"

type alpacaRecord struct {
	Dataset     string `json:"dataset"`
	Instruction string `json:"instruction"`
	Output      string `json:"output"`
	Generator   string `json:"generator"`
}

var alpacaEmb struct {
	once sync.Once
	e    *TFIDF
	err  error
}

// alpacaEmbedder is the built-in embedder fitted once on gpt4.json's
// 805 instructions, shared by the tests.
func alpacaEmbedder(t *testing.T, recs []alpacaRecord) *TFIDF {
	alpacaEmb.once.Do(func() {
		texts := make([]string, len(recs))
		for i, r := range recs {
			texts[i] = r.Instruction
		}
		alpacaEmb.e, alpacaEmb.err = FitTFIDF(context.Background(), texts, TFIDFConfig{}, 1)
	})
	if alpacaEmb.err != nil {
		t.Fatal(alpacaEmb.err)
	}
	return alpacaEmb.e
}

func readAlpaca(tb testing.TB, generator string) []alpacaRecord {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(alpacaDir, generator+".json"))
	if err != nil {
		tb.Skipf("alpaca_eval data not present (%v)", err)
	}
	var recs []alpacaRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		tb.Fatal(err)
	}
	return recs
}

// alpacaCategories are weak topic labels from keywords, for instructions
// that match exactly one.
var alpacaCategories = []struct {
	name string
	re   *regexp.Regexp
}{
	{"cooking", regexp.MustCompile(`\b(recipes?|cook(ing)?|dish(es)?|bak(e|ing)|ingredients?|meals?|soup|sauce)\b`)},
	{"code", regexp.MustCompile(`\b(python|code|javascript|programming|sql|algorithm|java|html|css|regex|bash)\b`)},
	{"poetry", regexp.MustCompile(`\b(poems?|haikus?|rhymes?|limericks?|lyrics|sonnets?)\b`)},
	{"math", regexp.MustCompile(`\b(calculate|equations?|solve|math|integers?|probability|derivative|prime)\b`)},
	{"travel", regexp.MustCompile(`\b(travel(ing)?|visit(ing)?|trip|vacation|tourists?|itinerary)\b`)},
}

func TestAlpacaEvalTopics(t *testing.T) {
	recs := readAlpaca(t, "gpt4")
	var ss []datasets.Sample
	var truth []int
	var all []datasets.Sample
	for _, r := range recs {
		s := sampleOf(r.Instruction, r.Output)
		all = append(all, s)
		low := strings.ToLower(r.Instruction)
		cat := -1
		for c, k := range alpacaCategories {
			if k.re.MatchString(low) {
				if cat >= 0 {
					cat = -2
					break
				}
				cat = c
			}
		}
		if cat >= 0 {
			ss = append(ss, s)
			truth = append(truth, cat)
		}
	}
	// The embedder is fitted on all 805 instructions; the weakly
	// labelled subset is clustered with k = the number of categories.
	emb := alpacaEmbedder(t, recs)
	k := len(alpacaCategories)
	m := fitPlanted(t, ss, Config{Embedder: emb, KMeans: KMeansConfig{K: k}, Seed: 1})
	labels := make([]int32, len(ss))
	for i := range ss {
		a, err := m.AssignVector(emb.EmbedText(FieldPrompt.Text(&ss[i]), nil))
		if err != nil {
			t.Fatal(err)
		}
		labels[i] = a.Topic
	}
	p, a, n := purity(labels, truth), ari(labels, truth), nmi(labels, truth)
	rl := randomLabels(len(ss), k, 1)
	var names []string
	for _, tp := range m.Topics {
		names = append(names, tp.Label)
	}
	t.Logf("alpaca_eval instructions with one keyword category: %d in %d categories; purity %.3f, ARI %.3f, NMI %.3f (random: purity %.3f, NMI %.3f); labels %q",
		len(ss), k, p, a, n, purity(rl, truth), nmi(rl, truth), names)
	if p < 0.6 || n < 0.3 {
		t.Fatalf("purity %.3f, NMI %.3f: want ≥ 0.6 and ≥ 0.3", p, n)
	}
	// Every category is the majority of some topic.
	major := map[int]bool{}
	for c := range k {
		cnt := make([]int, k)
		for i, l := range labels {
			if int(l) == c {
				cnt[truth[i]]++
			}
		}
		major[slices.Index(cnt, slices.Max(cnt))] = true
	}
	if len(major) < k-2 {
		t.Fatalf("only %d of %d categories lead a topic", len(major), k)
	}

	// All 805 instructions in 20 topics: the labels, for people.
	mAll := fitPlanted(t, all, Config{Embedder: emb, KMeans: KMeansConfig{K: 20}, Seed: 1})
	var sb strings.Builder
	for _, tp := range mAll.Topics {
		sb.WriteString("\n  ")
		sb.WriteString(tp.Label)
	}
	t.Logf("all %d instructions: k=%d (silhouette %.3f)%s", len(all), mAll.K, mAll.Fit.Silhouette, sb.String())
}

func TestAlpacaEvalSemDeDup(t *testing.T) {
	recs := readAlpaca(t, "gpt4")
	type doc struct {
		s    datasets.Sample
		orig int
	}
	var docs []doc
	for _, r := range recs {
		docs = append(docs, doc{sampleOf(r.Instruction, r.Output), -1})
	}
	// Near paraphrases of every eighth instruction: a polite prefix,
	// lower case, the final punctuation changed.
	n := len(docs)
	for i := 0; i < n; i += 8 {
		in := docs[i].s.Messages[0].Content
		p := "Please, " + strings.ToLower(strings.TrimRight(in, ".?! \n")) + "!"
		docs = append(docs, doc{sampleOf(p, docs[i].s.Messages[1].Content), i})
	}
	var ss []datasets.Sample
	for _, d := range docs {
		ss = append(ss, d.s)
	}
	emb := alpacaEmbedder(t, recs)
	m := fitPlanted(t, ss, Config{Embedder: emb, KMeans: KMeansConfig{K: 16}, Seed: 1})
	groups := map[int32][]DedupItem{}
	for _, d := range docs {
		v := emb.EmbedText(FieldPrompt.Text(&d.s), nil)
		a, _ := m.AssignVector(v)
		groups[a.Topic] = append(groups[a.Topic], DedupItem{ID: d.s.ID, Vec: v})
	}
	dropped := map[string]string{}
	for _, g := range groups {
		dups, err := SemDeDup(g, DedupConfig{Threshold: 0.9})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dups {
			dropped[d.ID] = d.Survivor
		}
	}
	planted, found := 0, 0
	for _, d := range docs {
		if d.orig >= 0 {
			planted++
			if _, ok := dropped[d.s.ID]; ok {
				found++
			} else if _, ok := dropped[docs[d.orig].s.ID]; ok && d.s.ID < docs[d.orig].s.ID {
				found++ // the paraphrase survived in its original's place
			}
		}
	}
	// The same, as one cluster: clustering first loses only the pairs
	// split across topics.
	var one []DedupItem
	for _, d := range docs {
		one = append(one, DedupItem{ID: d.s.ID, Vec: emb.EmbedText(FieldPrompt.Text(&d.s), nil)})
	}
	global, err := SemDeDup(one, DedupConfig{Threshold: 0.9})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("alpaca_eval: %d instructions + %d planted paraphrases: %d paraphrases dropped; within 16 topics %d dropped in all, as one cluster %d (templated prompts such as the party-recipe ones are near duplicates too)",
		n, planted, found, len(dropped), len(global))
	if float64(found) < 0.95*float64(planted) || float64(len(dropped)) < 0.9*float64(len(global)) {
		t.Fatalf("found %d of %d paraphrases; %d drops within topics, %d as one cluster", found, planted, len(dropped), len(global))
	}
}
