package filters

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/internal/randtext"
)

// memoTexts are texts of every kind the memoised measurements read: the
// held-out language set, loops, fenced code, gibberish, empty.
func memoTexts(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("testdata/langid_heldout.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var texts []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "#") {
			_, text, _ := strings.Cut(line, "\t")
			texts = append(texts, text)
		}
	}
	if len(texts) < 50 {
		t.Fatalf("held-out set has %d texts", len(texts))
	}
	return append(texts,
		strings.Repeat("I am sorry, I cannot do that. ", 30),
		"Here is code:\n```go\nfor { x++ }\n```\n"+strings.Repeat("and again ", 40),
		"ĠtheĠcatĠsat ##ing ▁on ▁the ▁mat }); => {} foo_bar",
		"",
	)
}

// TestMemoisedMeasuresAreTheMeasures: a memo miss and a memo hit give
// exactly what the measurement computes directly.
func TestMemoisedMeasuresAreTheMeasures(t *testing.T) {
	sc := getScratch()
	defer putScratch(sc)
	// Two phrase lists: their memo entries must not mix.
	refusals := []*refusalFilter{newRefusalFilter([]string{"I am sorry", "cannot"}, -1), newRefusalFilter([]string{"binary", "the"}, -1)}
	for _, text := range memoTexts(t) {
		for _, flags := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			var want DegenerateStats
			measureDegenerate(text, sc, &want, flags[0], flags[1])
			for pass := range 2 {
				var got DegenerateStats
				memoDegenerate(text, sc, &got, flags[0], flags[1])
				if got != want {
					t.Fatalf("pass %d flags %v on %.40q: memo %+v, direct %+v", pass, flags, text, got, want)
				}
			}
		}
		c0, w0, t0 := measureText(text)
		for pass := range 2 {
			if c, w, tk := memoMeasureText(text); c != c0 || w != w0 || tk != t0 {
				t.Fatalf("pass %d on %.40q: memo length (%d %d %d), direct (%d %d %d)", pass, text, c, w, tk, c0, w0, t0)
			}
		}
		l0, n0 := countLatin(cutUTF8(text, 2000))
		for pass := range 2 {
			if l, n := memoCountLatin(text); l != l0 || n != n0 {
				t.Fatalf("pass %d on %.40q: memo latin (%d %d), direct (%d %d)", pass, text, l, n, l0, n0)
			}
		}
		wc0 := countNormWords(text)
		for pass := range 2 {
			if wc := memoCountNormWords(text); wc != wc0 {
				t.Fatalf("pass %d on %.40q: memo word count %d, direct %d", pass, text, wc, wc0)
			}
		}
		for _, rf := range refusals {
			k0, a0, ok0 := rf.find(text)
			for pass := range 2 {
				if k, a, ok := rf.memoFind(text); k != k0 || a != a0 || ok != ok0 {
					t.Fatalf("pass %d on %.40q: memo refusal (%d %d %v), direct (%d %d %v)", pass, text, k, a, ok, k0, a0, ok0)
				}
			}
		}
		l, c, n := detectLanguage(text)
		for pass := range 2 {
			gl, gc, gn := memoLanguage(text)
			if gl != l || gc != c || gn != n {
				t.Fatalf("pass %d on %.40q: memo (%s %v %d), direct (%s %v %d)", pass, text, gl, gc, gn, l, c, n)
			}
		}
	}
}

// TestShortTextsSkipCheapMemos: texts shorter than cheapMemoMin (most
// prompts, met once each) are scanned, not filed in the one-pass scans'
// memos; a longer one is filed.
func TestShortTextsSkipCheapMemos(t *testing.T) {
	n0, l0, w0 := lengthMemo.len(), latinMemo.len(), wordCountMemo.len()
	for i := range 1000 {
		text := fmt.Sprintf("Write a short poem about the sea (variant %d)", i)
		memoMeasureText(text)
		memoCountLatin(text)
		memoCountNormWords(text)
	}
	if lengthMemo.len() != n0 || latinMemo.len() != l0 || wordCountMemo.len() != w0 {
		t.Errorf("short texts filed in the memos: %d→%d, %d→%d, %d→%d entries", n0, lengthMemo.len(), l0, latinMemo.len(), w0, wordCountMemo.len())
	}
	long := strings.Repeat("a long answer that is reused under many prompts ", 8)
	memoMeasureText(long)
	memoCountLatin(long)
	memoCountNormWords(long)
	if lengthMemo.len() == n0 || latinMemo.len() == l0 || wordCountMemo.len() == w0 {
		t.Error("a long text was not filed in the memos")
	}
}

// TestMemoisedVerdictOfFencedLoop: the degenerate filter's verdict of a
// looping answer with code fences (measured on a scratch buffer) is the
// same when it comes from the memo after that buffer was reused while
// another scratch serves the check: the stored loop unit must not alias a
// buffer.
func TestMemoisedVerdictOfFencedLoop(t *testing.T) {
	fs, err := New(only(Config{}, "degenerate.loop"))
	if err != nil {
		t.Fatal(err)
	}
	looping := qa("Print the numbers.", "```\nprint(1)\n```\n"+strings.Repeat("the numbers are printed now, ", 25))
	first, ok := CheckAll(fs, looping)
	if ok {
		t.Fatalf("loop kept: %+v", first)
	}
	// Hold the pool's scratches (the one that measured first among them)
	// and overwrite their buffers; the next check measures with a new one.
	var held []*scratch
	for range 8 {
		sc := getScratch()
		for _, b := range []*[]byte{&sc.buf, &sc.buf2, &sc.buf3} {
			*b = (*b)[:cap(*b)]
			for i := range *b {
				(*b)[i] = 'z'
			}
		}
		held = append(held, sc)
	}
	again, _ := CheckAll(fs, looping)
	for _, sc := range held {
		putScratch(sc)
	}
	if again.Detail != first.Detail || again.Rule != first.Rule || again.Value != first.Value {
		t.Fatalf("memoised verdict %+v, first %+v", again, first)
	}
}

// TestTextMemoBounded: the memo never holds more than its bound.
func TestTextMemoBounded(t *testing.T) {
	var m textMemo[int]
	for i := range 3 * memoShards * memoShardSize {
		m.put(textKey(fmt.Sprint(i), 0), i)
	}
	if n := m.len(); n > 2*memoShards*memoShardSize || n < memoShards*memoShardSize/2 {
		t.Fatalf("memo holds %d entries, bound %d", n, 2*memoShards*memoShardSize)
	}
	if v, ok := m.get(textKey(fmt.Sprint(3*memoShards*memoShardSize-1), 0)); !ok || v != 3*memoShards*memoShardSize-1 {
		t.Fatalf("latest entry: %d %v", v, ok)
	}
}

// TestTextMemoKeepsReusedTexts: a text met every few hundred texts stays
// in the memo while millions of texts met once stream past it (a reused
// answer among unique prompts).
func TestTextMemoKeepsReusedTexts(t *testing.T) {
	var m textMemo[int]
	reused := textKey("the answer reused under every prompt", 0)
	m.put(reused, 42)
	misses := 0
	for i := range 2_000_000 {
		m.put(textKey(fmt.Sprint("unique prompt ", i), 0), i)
		if i%500 == 0 {
			if _, ok := m.get(reused); !ok {
				misses++
				m.put(reused, 42)
			}
		}
	}
	if misses > 0 {
		t.Fatalf("the reused text was forgotten %d times", misses)
	}
}

// TestMemoisedPIIIsTheSearch: the PII scrubber's memoised findings equal
// an unmemoised search of the same text, for scrubbers of different kinds
// and reserved settings sharing the memo (their entries must not mix),
// on texts with and without findings; and a caller that rewrites the
// findings it got does not change what the memo gives the next caller.
func TestMemoisedPIIIsTheSearch(t *testing.T) {
	texts := append(memoTexts(t),
		"mail me at jane.doe@example.org or call (415) 555-0134 today",
		"server at 10.0.0.1 and 8.8.8.8, key sk-abcdefghijklmnopqrstuvwxyz0123456789ABCD",
		"card 4111 1111 1111 1111 exp 12/30; IBAN GB82 WEST 1234 5698 7654 32")
	var scrubbers []*Scrubber
	for _, cfg := range []PIIConfig{{}, {Kinds: []string{"email"}}, {Kinds: []string{"phone", "ipv4"}, RedactReserved: true}, {RedactReserved: true}} {
		s, err := NewScrubber(cfg)
		if err != nil {
			t.Fatal(err)
		}
		scrubbers = append(scrubbers, s)
	}
	found := 0
	for _, text := range texts {
		for i, s := range scrubbers {
			want := s.search(nil, text)
			found += len(want)
			for pass := range 2 {
				got := s.find(nil, text)
				if !slices.Equal(got, want) {
					t.Fatalf("scrubber %d pass %d on %.50q: memo %v, search %v", i, pass, text, got, want)
				}
				for j := range got {
					got[j].start, got[j].end = -1, -1 // the caller's copy
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no text had findings")
	}
}

// TestCountNormWords: countNormWords counts exactly the words
// normWordHashes hashes (echo skips a response by the count, so the two
// must agree), on texts mixing ASCII, Unicode letters, digits, marks and
// separators.
func TestCountNormWords(t *testing.T) {
	pieces := []string{"word", "Word", "42", " ", "  ", "\n", ",", "-", "'", "café", "naïve", "e\u0301", "\u0301", "日本語", "Ωμέγα", "—", "\u00a0", "٣", "😀", "\xff", "_", "a_b"}
	r := rand.New(rand.NewPCG(5, 6))
	texts := []string{"", " ", "a", "\u0301"}
	texts = append(texts, randtext.Texts(r, pieces, 5000, 25)...)
	for _, s := range texts {
		hs, _, _ := normWordHashes(nil, nil, false, s, nil, -1)
		if got := countNormWords(s); got != len(hs) {
			t.Fatalf("countNormWords(%q) = %d, normWordHashes gives %d words", s, got, len(hs))
		}
		if got := memoCountNormWords(s); got != len(hs) {
			t.Fatalf("memoCountNormWords(%q) = %d, want %d", s, got, len(hs))
		}
	}
}
