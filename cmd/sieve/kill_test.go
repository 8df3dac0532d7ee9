package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/sieve-data/sieve/bench/chatgen"
	"github.com/sieve-data/sieve/datasets"
)

// TestKillMidWriteLeavesNoPartialVersion kills `sieve run` with SIGKILL
// at two points found by watching the run, not by timing it: while the
// shard writers write (a data/*.parquet file has appeared in the run's
// staging directory, the manifest has not) and at the commit, after the
// manifest is written and just before the rename that publishes the
// version (the datasets.PauseBeforeCommitEnv hook holds the run there).
// After each kill the test checks the phase the kill hit from what the
// run left behind, that no version was added and that the versions
// present are sound; then the next run cleans the stale staging
// directories and commits.
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
	staging := filepath.Join(store, "big", "_staging")

	versions := func() []string {
		t.Helper()
		vs, err := st.Versions(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		// Every visible version is complete and sound.
		for _, v := range vs {
			ver, err := st.OpenVersion(ctx, datasets.Ref{Name: "big", Version: v})
			if err != nil {
				t.Fatalf("%s is visible but broken: %v", v, err)
			}
			if p, _ := ver.Verify(ctx); len(p) != 0 {
				t.Fatalf("%s damaged: %v", v, p)
			}
		}
		return vs
	}
	if r := sieve(t, "run", recipe, "--store", store, "--quiet"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	before := versions()
	if len(before) != 1 {
		t.Fatalf("versions after the first run: %v", before)
	}

	// run starts a forced rerun and returns it with a channel closed
	// when it exits.
	run := func(env ...string) (*exec.Cmd, chan struct{}) {
		cmd := exec.Command(sieveBin, "run", recipe, "--store", store, "--quiet", "--force")
		cmd.Env = append(os.Environ(), env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		return cmd, done
	}
	kill := func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	// watch polls until found returns true, failing if the run exits first.
	watch := func(what string, done chan struct{}, found func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Minute)
		for !found() {
			select {
			case <-done:
				t.Fatalf("the run exited before %s", what)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s after 5 minutes", what)
			}
			time.Sleep(time.Millisecond)
		}
	}

	// Phase 1: kill while the shard writers write.
	old, _ := filepath.Glob(filepath.Join(staging, "*"))
	cmd, done := run()
	var shardDir string
	watch("a shard in staging", done, func() bool {
		shards, _ := filepath.Glob(filepath.Join(staging, "*", "data", "*.parquet"))
		for _, s := range shards {
			if d := filepath.Dir(filepath.Dir(s)); !slices.Contains(old, d) {
				shardDir = d
				return true
			}
		}
		return false
	})
	kill(cmd, done)
	// The kill hit the writes: the staging directory is there with shards
	// and without a manifest (Commit writes it first thing).
	shards, _ := filepath.Glob(filepath.Join(shardDir, "data", "*.parquet"))
	if _, err := os.Stat(filepath.Join(shardDir, datasets.ManifestFile)); err == nil || len(shards) == 0 {
		t.Fatalf("phase 1: the kill did not land during the shard writes: %d shards, manifest err %v", len(shards), err)
	}
	t.Logf("phase 1: killed with %d of 8 shard files present, no manifest", len(shards))
	if vs := versions(); !slices.Equal(vs, before) {
		t.Fatalf("phase 1: versions %v after a kill during the writes, want %v", vs, before)
	}

	// Phase 2: kill at the commit, just before the rename.
	marker := filepath.Join(dir, "pause")
	cmd, done = run(datasets.PauseBeforeCommitEnv + "=" + marker)
	watch("the pre-commit hook's marker", done, func() bool {
		_, err := os.Stat(marker)
		return err == nil
	})
	b, err := os.ReadFile(marker)
	if err != nil {
		t.Fatal(err)
	}
	commitDir := string(b)
	if _, err := os.Stat(filepath.Join(commitDir, datasets.ManifestFile)); err != nil || filepath.Dir(commitDir) != staging {
		t.Fatalf("phase 2: the hook names %q, not a staging directory with its manifest (%v)", commitDir, err)
	}
	if vs := versions(); !slices.Equal(vs, before) {
		t.Fatalf("phase 2: versions %v while paused before the rename, want %v", vs, before)
	}
	kill(cmd, done)
	if _, err := os.Stat(filepath.Join(commitDir, datasets.ManifestFile)); err != nil {
		t.Fatalf("phase 2: the killed commit's staging directory went away: %v", err)
	}
	if vs := versions(); !slices.Equal(vs, before) {
		t.Fatalf("phase 2: versions %v after a kill before the rename, want %v", vs, before)
	}

	// The next run removes the killed runs' staging and commits.
	if r := sieve(t, "run", recipe, "--store", store, "--quiet", "--force"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	left, _ := filepath.Glob(filepath.Join(staging, "*"))
	if len(left) != 0 {
		t.Errorf("stale staging left: %v", left)
	}
	if vs := versions(); len(vs) != len(before)+1 {
		t.Errorf("versions after a clean run: %v, want one more than %v", vs, before)
	}
}
