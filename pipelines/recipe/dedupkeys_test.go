package recipe

import (
	"strings"
	"testing"
)

// TestDedupKeys: both dedup stages accept the four keys; an unknown key's
// error lists them all; fuzzy dedup keyed on turns needs verification.
func TestDedupKeys(t *testing.T) {
	for _, stage := range []string{"exact_dedup", "fuzzy_dedup"} {
		for _, key := range []string{"conversation", "prompt", "response", "turns"} {
			y := "name: x\nsources: [{name: a, path: p}]\nstages:\n  - " + stage + ": {key: " + key + "}\n"
			if _, err := Parse("r.yaml", []byte(y)); err != nil {
				t.Errorf("%s key %s: %v", stage, key, err)
			}
		}
		y := "name: x\nsources: [{name: a, path: p}]\nstages:\n  - " + stage + ": {key: answer}\n"
		_, err := Parse("r.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), "conversation, prompt, response or turns") {
			t.Errorf("%s key answer: error %v, want one listing the four keys", stage, err)
		}
	}
	for _, tc := range []struct{ stage, want string }{
		{"fuzzy_dedup: {key: turns, verify: none}", "r.yaml:4: stages[0].fuzzy_dedup.verify: key turns needs verification"},
		{"fuzzy_dedup: {key: turns, against: [demo@v1]}", "r.yaml:4: stages[0].fuzzy_dedup.against: "},
	} {
		_, err := Parse("r.yaml", []byte("name: x\nsources: [{name: a, path: p}]\nstages:\n  - "+tc.stage+"\n"))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want prefix %q", tc.stage, err, tc.want)
		}
	}
	for _, ok := range []string{"fuzzy_dedup: {key: turns, verify: estimate}", "fuzzy_dedup: {key: response, verify: none}"} {
		if _, err := Parse("r.yaml", []byte("name: x\nsources: [{name: a, path: p}]\nstages:\n  - "+ok+"\n")); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// TestFuzzyDedupDefaultKey: turns by default; conversation where turns
// cannot run (verify none, against); exact_dedup stays conversation.
func TestFuzzyDedupDefaultKey(t *testing.T) {
	for stage, want := range map[string]string{
		"fuzzy_dedup: {}":                   "turns",
		"fuzzy_dedup: {verify: estimate}":   "turns",
		"fuzzy_dedup: {verify: none}":       "conversation",
		"fuzzy_dedup: {against: [demo@v1]}": "conversation",
		"fuzzy_dedup: {key: prompt}":        "prompt",
		"exact_dedup: {}":                   "conversation",
	} {
		r, err := Parse("r.yaml", []byte("name: x\nsources: [{name: a, path: p}]\nstages:\n  - "+stage+"\n"))
		if err != nil {
			t.Fatalf("%s: %v", stage, err)
		}
		var got string
		switch c := r.Stages[0].Config.(type) {
		case *FuzzyDedup:
			got = c.Key
		case *ExactDedup:
			got = c.Key
		}
		if got != want {
			t.Errorf("%s: key %q, want %q", stage, got, want)
		}
	}
}
