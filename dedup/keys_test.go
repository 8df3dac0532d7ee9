package dedup

import (
	"math/rand/v2"
	"slices"
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
