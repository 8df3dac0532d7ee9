package main

import (
	"testing"

	"github.com/sieve-data/sieve/dedup"
)

// TestKeysPlanted: on the chatgen fallback, turns keeps the short answers
// to one long prompt apart where conversation merges them, response
// merges the one-label pairs, and every paraphrase changes its prompt.
func TestKeysPlanted(t *testing.T) {
	src, err := loadKeySource("", 60)
	if err != nil {
		t.Fatal(err)
	}
	sets := map[string]*keySet{}
	for _, s := range buildKeySets(src, 1) {
		sets[s.name] = s
	}
	for _, p := range sets["paraphrase"].pairs {
		if sets["paraphrase"].samples[p[0]][0].Content == sets["paraphrase"].samples[p[1]][0].Content {
			t.Fatalf("paraphrase left the prompt unchanged: %q", sets["paraphrase"].samples[p[0]][0].Content)
		}
	}
	tc := dedup.DefaultTextConfig()
	rate := func(set string, mode dedup.KeyMode) float64 {
		m, _ := keyMerged(sets[set], tc, mode, dedup.VerifyExact, 0.7, dedup.EdgesLinear)
		n := 0
		for _, x := range m {
			if x {
				n++
			}
		}
		return float64(n) / float64(len(m))
	}
	if c, tu := rate("one_prompt_long", dedup.KeyConversation), rate("one_prompt_long", dedup.KeyTurns); c < 0.5 || tu > 0.05 {
		t.Errorf("one_prompt_long: conversation merges %v, turns %v", c, tu)
	}
	if r, tu := rate("one_answer", dedup.KeyResponse), rate("one_answer", dedup.KeyTurns); r != 1 || tu != 0 {
		t.Errorf("one_answer: response merges %v, turns %v", r, tu)
	}
	if r := rate("paraphrase", dedup.KeyResponse); r < 0.95 {
		t.Errorf("paraphrase: response recall %v", r)
	}
}
