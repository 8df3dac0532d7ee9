package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainFindsItsSettings runs the settings-finding flags of sieve
// train on a tiny model: --find-lr prints a suggestion and writes the
// plot; --lr auto with --batch-size auto trains with the suggestion and
// the micro-batch that fits --max-memory, printing the memory estimate;
// a budget too small is refused; a learning rate warmed up far too high
// trips the loss watchdog (exit 1, naming the last good checkpoint) and
// --resume continues from it.
func TestTrainFindsItsSettings(t *testing.T) {
	dir := t.TempDir()
	store := sumsStore(t, dir, 64, 12)
	cfg := tinyConfig(t, dir, 2, 128)
	out := filepath.Join(dir, "run")
	base := []string{"train", "--store", store, "--data", "sums@latest", "--init", cfg, "--vocab-size", "300", "--seq-len", "96", "--output", out}

	r := sieve(t, append(base, "--find-lr", "--find-lr-steps", "40", "--batch-size", "4", "--json")...)
	if r.code != 0 {
		t.Fatalf("--find-lr: exit %d\n%s", r.code, r.stderr)
	}
	var found struct{ Suggestion float64 }
	if err := json.Unmarshal([]byte(r.stdout), &found); err != nil || found.Suggestion <= 0 {
		t.Fatalf("--find-lr --json: %q, %v", r.stdout, err)
	}
	if _, err := os.Stat(filepath.Join(out, LRFinderPlot)); err != nil {
		t.Error(err)
	}

	r = sieve(t, append(base, "--lr", "auto", "--find-lr-steps", "40", "--batch-size", "auto", "--max-memory", "1G", "--max-steps", "6", "--early-stop", "2")...)
	if r.code != 0 {
		t.Fatalf("--lr auto: exit %d\n%s", r.code, r.stderr)
	}
	for _, want := range []string{"memory: peak memory about", "lr finder: ", "suggested --lr", "training at --lr", "best eval loss"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("--lr auto: no %q in\n%s", want, r.stdout)
		}
	}

	r = sieve(t, append(base, "--max-memory", "1M", "--max-steps", "2")...)
	if r.code != 1 || !strings.Contains(r.stderr, "not enough memory") {
		t.Errorf("--max-memory 1M: exit %d\n%s", r.code, r.stderr)
	}

	div := append(base, "--lr", "3", "--warmup-steps", "300", "--max-steps", "300", "--batch-size", "2", "--save-every", "2", "--output", filepath.Join(dir, "div"))
	r = sieve(t, div...)
	if r.code != 1 || !strings.Contains(r.stderr, "the loss diverged at step") || !strings.Contains(r.stderr, "the last good checkpoint is") {
		t.Fatalf("diverging run: exit %d\n%s", r.code, r.stderr)
	}
	r2 := sieve(t, append(div, "--resume")...)
	last := func(s string) string {
		lines := strings.Split(strings.TrimSpace(s), "\n")
		return lines[len(lines)-1]
	}
	if r2.code != 1 || last(r2.stderr) != last(r.stderr) {
		t.Errorf("resumed diverging run: exit %d\n%s\nwant\n%s", r2.code, r2.stderr, r.stderr)
	}
}
