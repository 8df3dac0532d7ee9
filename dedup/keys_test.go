package dedup

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

func conv(system, prompt, answer string) []datasets.Message {
	var m []datasets.Message
	if system != "" {
		m = append(m, datasets.Message{Role: datasets.RoleSystem, Content: system})
	}
	if prompt != "" {
		m = append(m, datasets.Message{Role: datasets.RoleUser, Content: prompt})
	}
	return append(m, datasets.Message{Role: datasets.RoleAssistant, Content: answer})
}

func TestParseKeyMode(t *testing.T) {
	for _, s := range []string{"", "conversation", "prompt", "response", "turns"} {
		m, err := ParseKeyMode(s)
		if err != nil || (s == "" && m != KeyConversation) || (s != "" && string(m) != s) {
			t.Errorf("ParseKeyMode(%q) = %q, %v", s, m, err)
		}
	}
	_, err := ParseKeyMode("answer")
	if err == nil || !strings.Contains(err.Error(), "conversation, prompt, response or turns") {
		t.Errorf("ParseKeyMode(answer): %v", err)
	}
}

// TestExactKeyModes: response keys on the answers only, turns is the
// conversation's key.
func TestExactKeyModes(t *testing.T) {
	a := conv("Be brief.", "What is 2+2?", "Four.")
	b := conv("", "How much is two plus two?", "four. ")
	c := conv("Be brief.", "What is 2+2?", "4")
	eq := func(x, y []datasets.Message, m KeyMode) bool { return ExactKey(x, m) == ExactKey(y, m) }
	if !eq(a, b, KeyResponse) || eq(a, c, KeyResponse) {
		t.Error("response key: same answer must match, different answer must not")
	}
	if eq(a, b, KeyTurns) || eq(a, c, KeyTurns) || !eq(a, conv("be  brief.", "what is 2+2?", "FOUR."), KeyTurns) {
		t.Error("turns key: must match only when prompt and answer both match")
	}
	for _, x := range [][]datasets.Message{a, b, c} {
		if ExactKey(x, KeyTurns) != ExactKey(x, KeyConversation) {
			t.Error("turns key differs from the conversation key")
		}
	}
	if eq(a, c, KeyConversation) || !eq(a, c, KeyPrompt) {
		t.Error("conversation and prompt keys changed")
	}
}

func TestSampleTextModes(t *testing.T) {
	m := conv("sys", "ask", "reply")
	m = append(m, datasets.Message{Role: datasets.RoleUser, Content: "more"}, datasets.Message{Role: datasets.RoleAssistant, Content: "again"})
	for mode, want := range map[KeyMode]string{
		KeyConversation: "sys\nask\nreply\nmore\nagain",
		KeyPrompt:       "sys\nask\nmore",
		KeyResponse:     "reply\nagain",
		KeyTurns:        "reply\nagain",
	} {
		if got := SampleText(m, mode); got != want {
			t.Errorf("SampleText(%s) = %q, want %q", mode, got, want)
		}
	}
}

var (
	longPrompt = "Classify the product described below into one of the store's categories and say why if it is not obvious. " +
		"The product is a set of three stainless steel knives with wooden handles, sold in a gift box with a sharpening stone, " +
		"recommended for home cooks who want a durable everyday set that keeps its edge and is easy to clean by hand."
	longAnswer = "A good way to start is to decide what you want the garden to give you in the first year, then choose plants " +
		"that suit the light and the soil you have, water them deeply but not often, and keep a notebook of what grew well " +
		"so that next spring you can plant more of what worked and less of what did not."
)

// TestSketcherTurns: under turns, a pair is similar only when both the
// prompts and the responses are; the signature is the response's.
func TestSketcherTurns(t *testing.T) {
	c := DefaultTextConfig()
	for _, verify := range []string{VerifyExact, VerifyEstimate} {
		k := c.NewSketcher(KeyTurns, verify)
		sim := func(x, y []datasets.Message) float64 {
			_, px, ok1 := k.Sketch(x)
			_, py, ok2 := k.Sketch(y)
			if !ok1 || !ok2 {
				t.Fatalf("%s: no sketch", verify)
			}
			return PayloadSimilarity(px, py)
		}
		sportsA := conv("", longPrompt, "Sports and Outdoors.")
		kitchen := conv("", longPrompt, "Home and Kitchen, because it is a set of kitchen knives.")
		para := conv("", "Please help: "+longPrompt+" Thanks!", "Sports and Outdoors.")
		other := conv("", "Name a category of a large online store.", "Sports and Outdoors.")
		if s := sim(sportsA, kitchen); s != 0 {
			t.Errorf("%s: different answers to one prompt: %v, want 0", verify, s)
		}
		if s := sim(sportsA, para); s < 0.7 {
			t.Errorf("%s: one answer, paraphrased long prompt: %v, want ≥ 0.7", verify, s)
		}
		if s := sim(sportsA, other); s > 0.2 {
			t.Errorf("%s: one answer, different prompts: %v, want ≈ 0", verify, s)
		}
		if s := sim(sportsA, sportsA); s != 1 {
			t.Errorf("%s: self-similarity %v", verify, s)
		}
		// Empty prompts: equal to each other only.
		bare := conv("", "", longAnswer)
		if s := sim(bare, conv("", "", longAnswer)); s != 1 {
			t.Errorf("%s: two empty prompts, one answer: %v, want 1", verify, s)
		}
		if s := sim(bare, conv("", longPrompt, longAnswer)); s != 0 {
			t.Errorf("%s: empty against non-empty prompt: %v, want 0", verify, s)
		}
		// An empty answer takes no part.
		if _, _, ok := k.Sketch(conv("", longPrompt, "  ")); ok {
			t.Errorf("%s: sketch of an empty answer", verify)
		}
		// The signature is the response's.
		sig, _, _ := k.Sketch(sportsA)
		if want := c.NewSigner().Signature("Sports and Outdoors."); EstimateJaccard(sig, want) != 1 {
			t.Errorf("%s: turns signature is not the response's", verify)
		}
	}
}

// TestSketcherPayloads: the single-text payloads compare as before, the
// turns payload costs one varint more than the conversation's exact set,
// and mixed or malformed payloads compare 0.
func TestSketcherPayloads(t *testing.T) {
	c := DefaultTextConfig()
	a := conv("", longPrompt, longAnswer)
	b := conv("", longPrompt, longAnswer+" And enjoy it.")
	sh := func(x []datasets.Message, m KeyMode) []uint64 { return c.Shingles(SampleText(x, m)) }
	for _, mode := range []KeyMode{KeyConversation, KeyPrompt, KeyResponse} {
		_, pa, _ := c.NewSketcher(mode, VerifyExact).Sketch(a)
		_, pb, _ := c.NewSketcher(mode, VerifyExact).Sketch(b)
		if got, want := PayloadSimilarity(pa, pb), CompactJaccard(CompactSet(sh(a, mode)), CompactSet(sh(b, mode))); got != want {
			t.Errorf("%s: %v, want %v", mode, got, want)
		}
		if _, p, _ := c.NewSketcher(mode, VerifyNone).Sketch(a); p != nil {
			t.Errorf("%s: payload under verify none", mode)
		}
	}
	_, whole, _ := c.NewSketcher(KeyConversation, VerifyExact).Sketch(a)
	_, turns, _ := c.NewSketcher(KeyTurns, VerifyExact).Sketch(a)
	if len(turns) > len(whole)+2 {
		t.Errorf("turns payload %d bytes, conversation %d", len(turns), len(whole))
	}
	_, est, _ := c.NewSketcher(KeyTurns, VerifyEstimate).Sketch(a)
	for _, x := range [][]byte{nil, {}, whole, est, {'t', 0xff}, {'t', 3, 1, 2}, {'q', 1}} {
		if s := PayloadSimilarity(turns, x); s != 0 {
			t.Errorf("turns payload against %q: %v, want 0", x, s)
		}
	}
}

// TestEncodedJaccard32: the Jaccard read from the encoded bytes equals
// CompactJaccard of the decoded sets, for random sorted sets of any
// overlap, empty ones, and encodings with trailing bytes (ignored by
// both).
func TestEncodedJaccard32(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	set := func(n int, pool uint32) []uint32 {
		m := map[uint32]bool{}
		for len(m) < n {
			m[r.Uint32N(pool)] = true
		}
		out := make([]uint32, 0, n)
		for v := range m {
			out = append(out, v)
		}
		slices.Sort(out)
		return out
	}
	for i := range 3000 {
		pool := uint32(10 + r.IntN(600))
		a, b := set(r.IntN(int(min(pool, 300))), pool), set(r.IntN(int(min(pool, 300))), pool)
		ea, eb := appendU32(nil, a), appendU32(nil, b)
		if i%5 == 0 {
			ea = append(ea, 0xff, 0x01) // trailing bytes of a malformed payload
		}
		if got, want := encodedJaccard32(ea, eb), CompactJaccard(decodeU32(ea), decodeU32(eb)); got != want {
			t.Fatalf("sets of %d and %d: %v, want %v", len(a), len(b), got, want)
		}
	}
	if got := encodedJaccard32(nil, nil); got != 1 {
		t.Fatalf("two empty sets: %v, want 1", got)
	}
}

// TestSketchMemoMatchesFresh: a Sketcher that meets answers again and
// again (its memo of the key text's signature and set) gives what a fresh
// Sketcher gives for every sample, under every key mode and verification,
// and a caller writing into a returned signature does not change a later
// one.
func TestSketchMemoMatchesFresh(t *testing.T) {
	c := DefaultTextConfig()
	rng := rand.New(rand.NewPCG(7, 8))
	answers := []string{"", "  ", "Paris is the capital of France, on the Seine.",
		"Fold the egg whites gently into the batter, then bake for twenty minutes at 180 degrees.",
		"Les Misérables est un roman de Victor Hugo publié en 1862.",
		strings.Repeat("a long answer with many repeated words ", 40)}
	prompts := []string{"", "What is the capital of France?", "How do I bake a soufflé?", "Qui a écrit Les Misérables ?"}
	for _, mode := range []KeyMode{KeyConversation, KeyPrompt, KeyResponse, KeyTurns} {
		for _, verify := range []string{VerifyExact, VerifyEstimate, VerifyNone} {
			memo, fresh := c.NewSketcher(mode, verify), c.NewSketcher(mode, verify)
			for i := 0; i < 400; i++ {
				p := prompts[rng.IntN(len(prompts))]
				if rng.IntN(2) == 0 && p != "" {
					p += " (variant " + strings.Repeat("x", rng.IntN(5)) + ")"
				}
				m := conv("", p, answers[rng.IntN(len(answers))])
				sig, payload, ok := memo.Sketch(m)
				fresh.memo = sketchMemo{} // a Sketcher that has met nothing
				wsig, wpayload, wok := fresh.Sketch(m)
				if ok != wok || !slices.Equal(sig, wsig) || !slices.Equal(payload, wpayload) {
					t.Fatalf("%s/%s sample %d: memoised Sketch differs from a fresh Sketcher's", mode, verify, i)
				}
				for j := range sig {
					sig[j] = 0 // the caller owns what it gets
				}
			}
			if mode != KeyConversation && memo.memo.hits == 0 {
				t.Errorf("%s/%s: the memo never hit on answers met ~70 times each", mode, verify)
			}
		}
	}
}

// TestSketchMemoBounded: texts met once are remembered by key only, and
// the memo's entries stay within their budget whatever the number of
// texts met again.
func TestSketchMemoBounded(t *testing.T) {
	k := DefaultTextConfig().NewSketcher(KeyResponse, VerifyExact)
	word := func(i int) string { return strings.Repeat(string(rune('a'+i%26)), 1+i%7) }
	n := 0
	for i := 0; i < 20000; i++ {
		var b strings.Builder
		for j := 0; j < 60; j++ {
			b.WriteString(word(i*31 + j*i))
			b.WriteByte(' ')
		}
		b.WriteString(strconv.Itoa(i)) // every text distinct
		m := conv("", "q", b.String())
		for range 3 { // noted, kept, then a hit
			k.Sketch(m)
		}
		n = max(n, len(k.memo.cur)+len(k.memo.old))
		if k.memo.bytes() > 2*sketchMemoBytes {
			t.Fatalf("after %d texts the memo holds %d bytes, over twice its budget %d", i+1, k.memo.bytes(), sketchMemoBytes)
		}
	}
	if k.memo.hits != 20000 {
		t.Errorf("memo hits = %d, want one for each of the 20000 texts met a third time", k.memo.hits)
	}
	if n >= 20000 {
		t.Errorf("the memo kept all %d entries: it never let the older generation go", n)
	}
	var m sketchMemo
	for i := range 5 * sketchMemoKeys {
		if m.add([2]uint64{uint64(i), 1}, sketchEntry{}) {
			t.Fatalf("text %d, met once, was kept", i)
		}
		if n := len(m.seen) + len(m.seenOld); n > 2*sketchMemoKeys {
			t.Fatalf("after %d texts the memo remembers %d keys, over %d", i+1, n, 2*sketchMemoKeys)
		}
	}
}

// BenchmarkSketch: a sample's sketch under the default key (turns) and
// verification (exact) when every answer is new ("unique") and when each
// answer recurs under 20 prompts ("reused", the scale corpus's shape).
func BenchmarkSketch(b *testing.B) {
	r := rand.New(rand.NewPCG(5, 6))
	vocab := strings.Fields("the a of to and in is that for it with as was on be by this are or from at an not have which one can you all will use data model when your file time more code so if how what")
	text := func(words int) string {
		var sb strings.Builder
		for w := 0; w < words; w++ {
			if w > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[r.IntN(len(vocab))])
		}
		return sb.String()
	}
	answers := make([]string, 10000)
	for i := range answers {
		answers[i] = text(150 + r.IntN(150))
	}
	for _, reuse := range []int{1, 20} {
		samples := make([][]datasets.Message, len(answers))
		for i := range samples {
			samples[i] = conv("", text(10+r.IntN(20))+" (variant "+strconv.Itoa(i)+")", answers[i/reuse])
		}
		name := "unique"
		if reuse > 1 {
			name = "reused"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				// one pass over the stream, as a signer meets it
				k := DefaultTextConfig().NewSketcher(KeyTurns, VerifyExact)
				for _, m := range samples {
					k.Sketch(m)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(samples)), "us/sample")
		})
	}
}
