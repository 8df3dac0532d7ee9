package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/sieve-data/sieve/bench/chatgen"
	"github.com/sieve-data/sieve/datasets"
)

// TestKillMidWriteLeavesNoPartialVersion kills `sieve run` with SIGKILL
// at several points of a run and checks that the store then holds either
// no version or a complete one, and that the next run cleans the stale
// staging directory and commits.
func TestKillMidWriteLeavesNoPartialVersion(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "chat.jsonl")
	f, err := os.Create(in)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	if _, err := chatgen.Generate(bw, chatgen.Config{N: 12000, Dup: 0.05, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	bw.Flush()
	f.Close()
	recipe := filepath.Join(dir, "r.yaml")
	os.WriteFile(recipe, []byte("name: big\nsources:\n  - {name: chat, path: chat.jsonl}\nstages:\n  - exact_dedup\noutput:\n  shards: 8\n"), 0o644)
	store := filepath.Join(dir, "store")
	st := datasets.Store{Root: store}
	ctx := context.Background()

	// Time a full run to spread the kills over it.
	start := time.Now()
	if r := sieve(t, "run", recipe, "--store", filepath.Join(dir, "probe"), "--quiet"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	full := time.Since(start)

	for _, frac := range []float64{0.2, 0.5, 0.75, 0.9, 0.97} {
		cmd := exec.Command(sieveBin, "run", recipe, "--store", store, "--quiet", "--force")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(frac * float64(full)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		vs, err := st.Versions(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		// Every visible version is complete and sound.
		for _, v := range vs {
			ver, err := st.OpenVersion(ctx, datasets.Ref{Name: "big", Version: v})
			if err != nil {
				t.Fatalf("after a kill at %.0f%%: %s is visible but broken: %v", 100*frac, v, err)
			}
			if p, _ := ver.Verify(ctx); len(p) != 0 {
				t.Fatalf("after a kill at %.0f%%: %s damaged: %v", 100*frac, v, p)
			}
		}
		t.Logf("kill at %.0f%% of %v: versions %v", 100*frac, full, vs)
	}
	// The next run removes the killed runs' staging and commits.
	if r := sieve(t, "run", recipe, "--store", store, "--quiet", "--force"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	left, _ := filepath.Glob(filepath.Join(store, "big", "_staging", "*"))
	if len(left) != 0 {
		t.Errorf("stale staging left: %v", left)
	}
	if vs, _ := st.Versions(ctx, "big"); len(vs) == 0 {
		t.Error("no version after a clean run")
	}
}
