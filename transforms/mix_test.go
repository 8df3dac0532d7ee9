package transforms

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/passert"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/testing/ptest"

	"github.com/sieve-data/sieve/datasets"
)

// sourceSamples are n samples of dataset src, of distinct contents.
func sourceSamples(src string, n int) []datasets.Sample {
	var out []datasets.Sample
	for i := 0; i < n; i++ {
		msgs := []datasets.Message{{Role: "user", Content: fmt.Sprintf("question %d of %s", i, src)}, {Role: "assistant", Content: "answer " + src}}
		out = append(out, datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs,
			Source: datasets.Source{Dataset: src, File: src + ".jsonl", Index: int64(i)}})
	}
	return out
}

// mixTargetLine is a "mix" report line as "source available target".
func mixTargetLine(line string) (string, error) {
	var r Report
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %d %d", r.Mix.Source, r.Mix.Available, r.Mix.Target), nil
}

func init() { register.Function1x2(mixTargetLine) }

// TestMixMarks: a mix over sources a (30 samples, 6 of them dropped by an
// earlier stage), b (10) and c (5, not in the mix) keeps, of each mixed
// source, exactly its target (Targets of the survivors) of the earlier
// stage's survivors, those first by the seeded hash of their id, and
// marks the rest; c is kept whole, and the earlier stage's drops are not
// marked again. Weights 0.6/0.4 give a 15, b 10 (b is the limit); with b
// capped at 6 samples, a 9, b 6.
func TestMixMarks(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxB       int64
		wantTarget map[string]int64
	}{
		{"weights", 0, map[string]int64{"a": 15, "b": 10}},
		{"max_samples", 6, map[string]int64{"a": 9, "b": 6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := MixConfig{Seed: "s1", Sources: []MixSource{{Source: "a", Weight: 0.6}, {Source: "b", Weight: 0.4, MaxSamples: tc.maxB}}}
			var in []any
			var prior []any
			survivors := map[string][]string{} // source: "hash\x06ref" of the survivors
			for _, src := range []string{"a", "b", "c"} {
				n := map[string]int{"a": 30, "b": 10, "c": 5}[src]
				for i, smp := range sourceSamples(src, n) {
					in = append(in, smp)
					ref := sampleRef(&smp)
					if src == "a" && i%5 == 0 {
						prior = append(prior, formatMark("exact", ref, false, "someone"))
						continue
					}
					survivors[src] = append(survivors[src], fmt.Sprintf("%016x\x06%s", seededHash(cfg.Seed, smp.ID), ref))
				}
			}
			var wantMarks, wantTargets []any
			for _, src := range []string{"a", "b"} {
				hs := survivors[src]
				sort.Strings(hs)
				target := tc.wantTarget[src]
				wantTargets = append(wantTargets, fmt.Sprintf("%s %d %d", src, len(hs), target))
				for i, hr := range hs {
					if int64(i) >= target {
						wantMarks = append(wantMarks, formatMark("mix", hr[17:], false, ""))
					}
				}
			}
			p, s := beam.NewPipelineWithRoot()
			exact := StageMarks{Stage: "exact", Reason: "exact_duplicate", Detail: "%s", Marks: beam.CreateList(s, prior)}
			m, targets := MixMarks(s, beam.CreateList(s, in), cfg, "mix", []StageMarks{exact}, nil)
			passert.Equals(s, m.Marks, wantMarks...)
			passert.Equals(s, beam.ParDo(s, mixTargetLine, targets), wantTargets...)
			ptest.RunAndValidate(t, p)
		})
	}
}
