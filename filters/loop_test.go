package filters

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// measureLoopAllPeriods is measureLoop as first written: it searches
// every period from 1 to min(n/2, 200). The candidate-period search must
// find the same loop.
func measureLoopAllPeriods(text string, sc *scratch, st *DegenerateStats) {
	toks := loopTokens(sc, text)
	n := len(toks)
	if n < 2*minLoopCheck {
		return
	}
	sc.tab.reset(n)
	rep := 0
	for i := 0; i+4 <= n; i++ {
		if sc.tab.insert(mix(mix(mix(toks[i].h, toks[i+1].h), toks[i+2].h), toks[i+3].h)) {
			rep++
		}
	}
	if rep < minLoopCheck {
		return
	}
	maxP := min(n/2, 200)
	bestRun, bestP, bestEnd := 0, 0, 0
	for p := 1; p <= maxP; p++ {
		run := 0
		for i := p; i < n; i++ {
			if toks[i].h != toks[i-p].h {
				run = 0
				continue
			}
			run++
			if run+p > bestRun+bestP && run >= p {
				words := 0
				for _, t := range toks[i-run-p+1 : i-run+1] {
					if t.word {
						words++
					}
				}
				if words >= (p+2)/3 {
					bestRun, bestP, bestEnd = run, p, i
				}
			}
		}
	}
	if bestP == 0 {
		return
	}
	st.LoopPeriod = bestP
	st.LoopTokens = bestRun + bestP
	st.LoopCopies = float64(bestRun+bestP) / float64(bestP)
	u := toks[bestEnd-bestRun-bestP+1 : bestEnd-bestRun+1]
	st.LoopUnit = text[u[0].start:u[len(u)-1].end]
}

// loopTexts are texts with loops of many periods planted in random
// words from small vocabularies (so that 4-grams recur by chance too),
// and, when ../shared/data/alpaca_eval is there, real model answers.
func loopTexts(t *testing.T) []string {
	r := rand.New(rand.NewPCG(7, 7))
	vocab := strings.Fields("the a of and to in is it that for on with as , . ; - 1 2 3 x y z foo bar baz")
	word := func(k int) string { return vocab[r.IntN(min(k, len(vocab)))] }
	var out []string
	for i := 0; i < 2000; i++ {
		k := 3 + r.IntN(len(vocab))
		var b strings.Builder
		for j := r.IntN(300); j > 0; j-- {
			b.WriteString(word(k) + " ")
		}
		if r.IntN(2) == 0 {
			unit := make([]string, 1+r.IntN(60))
			for j := range unit {
				unit[j] = word(k)
			}
			for c := 2 + r.IntN(8); c > 0; c-- {
				b.WriteString(strings.Join(unit, " ") + " ")
			}
		}
		for j := r.IntN(200); j > 0; j-- {
			b.WriteString(word(k) + " ")
		}
		out = append(out, b.String())
	}
	files, _ := filepath.Glob("../../shared/data/alpaca_eval/*.json")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var recs []struct {
			Output string `json:"output"`
		}
		if json.Unmarshal(data, &recs) != nil {
			continue
		}
		for i, rec := range recs {
			if i%4 == 0 {
				out = append(out, rec.Output, rec.Output+" "+rec.Output+" "+rec.Output)
			}
		}
	}
	return out
}

// TestMeasureLoopCandidatePeriods: searching only the periods at which
// a 4-gram recurs (and 1–3) finds exactly the loop that searching every
// period finds.
func TestMeasureLoopCandidatePeriods(t *testing.T) {
	texts := loopTexts(t)
	sc, ref := new(scratch), new(scratch)
	loops := 0
	for i, text := range texts {
		var got, want DegenerateStats
		measureLoop(text, sc, &got)
		measureLoopAllPeriods(text, ref, &want)
		if got.LoopPeriod != want.LoopPeriod || got.LoopTokens != want.LoopTokens || got.LoopUnit != want.LoopUnit {
			t.Fatalf("text %d: loop %d/%d %q; all periods give %d/%d %q", i,
				got.LoopPeriod, got.LoopTokens, got.LoopUnit, want.LoopPeriod, want.LoopTokens, want.LoopUnit)
		}
		if want.LoopPeriod > 3 {
			loops++
		}
	}
	if loops < 300 {
		t.Fatalf("only %d of %d texts have a loop of period > 3: the test does not exercise the candidates", loops, len(texts))
	}
	t.Logf("%d texts, %d with a loop of period > 3", len(texts), loops)
}

func BenchmarkMeasureLoop(b *testing.B) {
	texts := loopTexts(&testing.T{})
	sc := new(scratch)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var st DegenerateStats
		measureLoop(texts[i%len(texts)], sc, &st)
	}
}
