package transforms

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// countingCheck drops samples whose first message contains "bad" and
// counts its calls.
type countingCheck struct{ calls *atomic.Int64 }

func (c countingCheck) Apply(_ context.Context, s *datasets.Sample) *datasets.Rejected {
	c.calls.Add(1)
	if strings.Contains(s.Messages[0].Content, "bad") {
		return &datasets.Rejected{Reason: "bad"}
	}
	return nil
}

// TestPassPrefixMemo: a sample's verdict is computed once per set of
// checks (exact and fuzzy dedup both ask for it), a changed sample or
// other checks are computed again, and the memo never changes a verdict.
func TestPassPrefixMemo(t *testing.T) {
	var calls atomic.Int64
	checks := checkSteps{steps: []Step{countingCheck{&calls}}, id: 1}
	other := checkSteps{steps: []Step{countingCheck{&calls}}, id: 2}
	ctx := context.Background()
	mk := func(id, text string) *datasets.Sample {
		return &datasets.Sample{ID: id, Messages: []datasets.Message{{Role: "user", Content: text}, {Role: "assistant", Content: "ok"}}}
	}
	good, bad := mk("a", "memo test: a good prompt"), mk("b", "memo test: a bad prompt")
	for round := 0; round < 3; round++ {
		if got := passPrefix(ctx, checks, good); got != "0" {
			t.Fatalf("round %d: good sample %q", round, got)
		}
		if got := passPrefix(ctx, checks, bad); got != "1" {
			t.Fatalf("round %d: bad sample %q", round, got)
		}
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("checks ran %d times for 2 samples asked 3 times each; want 2", n)
	}
	// Another set of checks, and a changed sample, are computed anew.
	passPrefix(ctx, other, good)
	changed := mk("a", "memo test: a good prompt, then bad")
	if got := passPrefix(ctx, checks, changed); got != "1" {
		t.Fatalf("changed sample %q", got)
	}
	if n := calls.Load(); n != 4 {
		t.Fatalf("checks ran %d times; want 4", n)
	}
	// The checks ran on a copy: the sample is unchanged.
	if good.Messages[0].Content != "memo test: a good prompt" {
		t.Fatal("passPrefix changed the sample")
	}
	if got := passPrefix(ctx, checkSteps{}, bad); got != "0" {
		t.Fatalf("no checks: %q", got)
	}
}
