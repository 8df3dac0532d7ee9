package main

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/bench/dedupbench/corpus"
	"github.com/sieve-data/sieve/dedup"
)

func testOptions(ths ...float64) options {
	return options{thresholds: ths, hashers: []string{dedup.HasherFast}, verify: []string{dedup.VerifyExact},
		fpw: dedup.DefaultFPWeight, fnw: dedup.DefaultFNWeight, edges: dedup.EdgesLinear}
}

// TestScore runs the stage's clustering on a small corpus: exact
// verification keeps nearly only true edges and finds most planted
// pairs; without verification precision is measured, not assumed, and
// falls.
func TestScore(t *testing.T) {
	cc := corpus.DefaultConfig()
	cc.N = 600
	docs := corpus.Generate(cc)
	c := dedup.DefaultTextConfig()
	o := testOptions(0.7)
	p := prepare(docs, c, 0.7)
	if len(p.truth) < 30 {
		t.Fatalf("only %d true pairs", len(p.truth))
	}
	ex := score(p, c, 0.7, dedup.VerifyExact, o)
	if ex["precision"].(float64) < 0.99 || ex["recall"].(float64) < 0.95 || ex["value"].(float64) < 0.95 {
		t.Errorf("exact verification: precision %v recall %v cluster F1 %v", ex["precision"], ex["recall"], ex["value"])
	}
	none := score(p, c, 0.7, dedup.VerifyNone, o)
	if none["precision"].(float64) >= ex["precision"].(float64) || none["recall"].(float64) < ex["recall"].(float64) {
		t.Errorf("unverified candidates: precision %v recall %v (exact: %v, %v)", none["precision"], none["recall"], ex["precision"], ex["recall"])
	}
}

// TestReferenceIndependent: the truth's shingles are strings, not
// dedup's hashes, and agree with dedup's normalisation on the corpus.
func TestReferenceIndependent(t *testing.T) {
	c := dedup.DefaultTextConfig()
	for _, s := range []string{"Hello,  World! 42 times", "ＦＵＬＬ width — ﬁne", "a b"} {
		if got, want := corpus.ReferenceNormalize(s, c), c.Normalize(s); got != want {
			t.Errorf("ReferenceNormalize(%q) = %q, dedup %q", s, got, want)
		}
	}
	if got := corpus.ReferenceShingles("One two, three four five six", c); len(got) != 2 || got[1] != "two three four five six" {
		t.Errorf("shingles %q", got)
	}
}

// docNumbers returns the "p / r / f at t" triples of the paragraph or
// table row of path that contains marker, and whether that text names
// command.
func docNumbers(t *testing.T, path, marker, command string) (map[string]string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var text string
	for _, para := range strings.Split(string(b), "\n\n") {
		for _, line := range strings.Split(para, "\n") {
			if strings.HasPrefix(line, "|") && strings.Contains(line, marker) {
				text = line
			}
		}
		if text == "" && strings.Contains(para, marker) {
			text = para
		}
	}
	if text == "" {
		t.Fatalf("%s: no text containing %q", path, marker)
	}
	text = strings.Join(strings.Fields(text), " ")
	out := map[string]string{}
	re := regexp.MustCompile(`(\d\.\d{3}) / (\d\.\d{3}) / (\d\.\d{3}) at (0\.\d)`)
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		if _, ok := out[m[4]]; !ok { // the first triple at a threshold
			out[m[4]] = m[1] + " / " + m[2] + " / " + m[3]
		}
	}
	return out, strings.Contains(text, command)
}

// TestDocsNumbers: the dedup quality numbers of docs/dedup.md and
// docs/bench.md are what the command they name prints (the
// fuzzy_dedup_quality_mean lines of fast hasher, exact verification,
// linear edges: precision / recall / cluster F1 at each threshold).
func TestDocsNumbers(t *testing.T) {
	if testing.Short() {
		t.Skip("scores five corpora (about 20 s)")
	}
	const command = "go run ./bench/dedupbench -seeds 5"
	var runs [][]map[string]any
	for seed := uint64(1); seed <= 5; seed++ {
		cc := corpus.DefaultConfig()
		cc.Seed = seed
		curSeed = seed
		runs = append(runs, evaluate(corpus.Generate(cc), dedup.DefaultTextConfig(), testOptions(0.5, 0.7, 0.8)))
	}
	want := map[string]string{}
	for i, q := range runs[0] {
		var p, r, f float64
		for _, run := range runs {
			p += run[i]["precision"].(float64) / 5
			r += run[i]["recall"].(float64) / 5
			f += run[i]["cluster"].(corpus.Scores).F1 / 5
		}
		want[fmt.Sprint(q["threshold"])] = fmt.Sprintf("%.3f / %.3f / %.3f", round3(p), round3(r), round3(f))
	}
	for _, d := range []struct{ path, marker string }{
		{"../../docs/dedup.md", "Quality on the labelled benchmark"},
		{"../../docs/bench.md", "fuzzy dedup quality"},
	} {
		got, named := docNumbers(t, d.path, d.marker, command)
		for th, w := range want {
			if got[th] != w {
				t.Errorf("%s at %s: docs say %q, %s gives %q", d.path, th, got[th], command, w)
			}
		}
		if !named {
			t.Errorf("%s: the numbers do not name %q", d.path, command)
		}
	}
}
