package filters

import (
	"bufio"
	"os"
	"sort"
	"strings"
	"testing"
)

// TestLanguageIDHeldOut measures the identifier on testdata's held-out
// labelled sentences (none of them in the training text).
func TestLanguageIDHeldOut(t *testing.T) {
	f, err := os.Open("testdata/langid_heldout.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type row struct{ lang, text string }
	var rows []row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lang, text, ok := strings.Cut(line, "\t")
		if !ok {
			t.Fatalf("bad line %q", line)
		}
		rows = append(rows, row{lang, text})
	}
	perLang := map[string][2]int{} // correct, total
	correct := 0
	confusions := map[string]int{}
	for _, r := range rows {
		got, conf := DetectLanguage(r.text)
		c := perLang[r.lang]
		c[1]++
		if got == r.lang {
			c[0]++
			correct++
		} else {
			confusions[r.lang+"→"+got]++
			t.Logf("miss: %s → %s (%.2f): %.60s", r.lang, got, conf, r.text)
		}
		perLang[r.lang] = c
	}
	acc := float64(correct) / float64(len(rows))
	var langs []string
	for l := range perLang {
		langs = append(langs, l)
	}
	sort.Strings(langs)
	for _, l := range langs {
		c := perLang[l]
		t.Logf("%-6s %2d/%2d  %.3f", l, c[0], c[1], float64(c[0])/float64(c[1]))
	}
	t.Logf("language ID accuracy on %d held-out sentences: %.3f; confusions %v", len(rows), acc, confusions)
	if acc < 0.90 {
		t.Errorf("accuracy %.3f < 0.90", acc)
	}
	// Short snippets: the first 40 characters of each sentence (reported,
	// not asserted; the filter does not judge texts under 40 letters).
	short := 0
	for _, r := range rows {
		rs := []rune(r.text)
		if got, _ := DetectLanguage(string(rs[:min(40, len(rs))])); got == r.lang {
			short++
		}
	}
	t.Logf("accuracy on 40-character prefixes: %.3f", float64(short)/float64(len(rows)))
}

// TestAsksForLanguageIsContains: the indexed search finds a language
// name exactly where a plain search of the lower-cased prompt for each
// name does, names at either end, in capitals and in other scripts
// included.
func TestAsksForLanguageIsContains(t *testing.T) {
	naive := func(p string) bool {
		lp := strings.Map(func(r rune) rune {
			if 'A' <= r && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, p)
		for _, n := range languageNames {
			if strings.Contains(lp, n) {
				return true
			}
		}
		return false
	}
	prompts := []string{"", "f", "fr", "French", "say it in FRENCH", "Translate this", "no names here at all",
		"ends with dutc", "ends with dutch", "英", "把这句话翻译成英文", "日本語で", "Перевести", "перев",
		"Écris en français", "thai food near me", "the latin alphabet", "in the clinic", "Deutsch?"}
	for _, n := range languageNames {
		prompts = append(prompts, n, "x"+n, n+"!", strings.ToUpper(n[:1])+n[1:], n[:len(n)-1])
	}
	sc := getScratch()
	defer putScratch(sc)
	found := 0
	for _, p := range prompts {
		want := naive(p)
		if got := asksForLanguage(sc, p); got != want {
			t.Errorf("asksForLanguage(%q) = %v, want %v", p, got, want)
		}
		if want {
			found++
		}
	}
	if found < len(languageNames) {
		t.Fatalf("only %d prompts name a language", found)
	}
}
