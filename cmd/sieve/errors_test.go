package main

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sieve-data/sieve/pipelines"
)

// oneErrorLine checks that stderr holds exactly one line, a "sieve: "
// line containing every want.
func oneErrorLine(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d (stderr %q)", r.code, code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "sieve: ") {
		t.Errorf("stderr = %q, want one sieve: line", r.stderr)
		return
	}
	for _, w := range want {
		if !strings.Contains(lines[0], w) {
			t.Errorf("stderr = %q, want it to contain %q", lines[0], w)
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func alpacaLines(n int, offset int) []byte {
	var b bytes.Buffer
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, `{"instruction": "What is %d plus %d?", "output": "It is %d."}`+"\n", i+offset, i, 2*i+offset)
	}
	return b.Bytes()
}

func gzipped(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(data)
	zw.Close()
	return b.Bytes()
}

// TestPipelineErrorsNameTheCause: what can be checked before the
// pipeline starts is, and what fails inside it is reported by its root
// cause, in one line, on both local runners.
func TestPipelineErrorsNameTheCause(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), alpacaLines(20, 0))
	plain := filepath.Join(dir, "plain.yaml")
	writeFile(t, plain, []byte("name: p\nsources:\n  - {name: a, path: a.jsonl, format: alpaca}\n"))
	aFile := filepath.Join(dir, "afile")
	writeFile(t, aFile, []byte("x"))
	// The README's decontaminate stage with a glob that matches nothing.
	noEvals := filepath.Join(dir, "noevals.yaml")
	writeFile(t, noEvals, []byte("name: p\nsources:\n  - {name: a, path: a.jsonl, format: alpaca}\nstages:\n  - decontaminate: {files: [nowhere/*.jsonl]}\n"))
	// A benchmark that is not JSON fails inside the pipeline.
	writeFile(t, filepath.Join(dir, "badevals", "b.jsonl"), []byte("this is not json\n"))
	badEvals := filepath.Join(dir, "badevals.yaml")
	writeFile(t, badEvals, []byte("name: p\nsources:\n  - {name: a, path: a.jsonl, format: alpaca}\nstages:\n  - decontaminate: {files: [badevals/*.jsonl]}\n"))
	port := freePort(t)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"store is a file", []string{"run", plain, "--store", aFile}, 1, []string{aFile, "not a directory"}},
		{"store under a file", []string{"run", plain, "--store", filepath.Join(aFile, "store")}, 1, []string{aFile, "not a directory"}},
		{"decontaminate glob without matches", []string{"run", noEvals, "--store", filepath.Join(dir, "s1")}, 1, []string{"decontaminate", "nowhere/*.jsonl", "no files match"}},
		{"unknown runner", []string{"run", plain, "--store", filepath.Join(dir, "s2"), "--runner=nosuch"}, 2, []string{"unknown runner nosuch"}},
		{"no job server", []string{"run", plain, "--store", filepath.Join(dir, "s3"), "--runner=universal", fmt.Sprintf("--endpoint=localhost:%d", port), "--environment_type=LOOPBACK"}, 1, []string{fmt.Sprintf("localhost:%d", port), "job server"}},
		{"bad benchmark on direct", []string{"run", badEvals, "--store", filepath.Join(dir, "s4")}, 1, []string{"b.jsonl"}},
		{"bad benchmark on prism", []string{"run", badEvals, "--store", filepath.Join(dir, "s5"), "--runner=prism"}, 1, []string{"b.jsonl"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := sieve(t, tc.args...)
			oneErrorLine(t, r, tc.code, tc.want...)
			if strings.HasSuffix(strings.TrimSpace(r.stderr), "failed:") {
				t.Errorf("no cause after the colon: %q", r.stderr)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
	// Checks before the pipeline leave nothing; a failed pipeline commits
	// nothing.
	for _, s := range []string{"s1", "s2", "s3"} {
		if _, err := os.Stat(filepath.Join(dir, s, "p")); !os.IsNotExist(err) {
			t.Errorf("%s: a failed run left a dataset directory", s)
		}
	}
	for _, s := range []string{"s4", "s5"} {
		if vs, _ := filepath.Glob(filepath.Join(dir, s, "p", "v*")); len(vs) != 0 {
			t.Errorf("%s: a failed run committed %v", s, vs)
		}
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro")
		os.Mkdir(ro, 0o555)
		r := sieve(t, "run", plain, "--store", filepath.Join(ro, "store"))
		oneErrorLine(t, r, 1, ro, "not writable")
	}
}

// TestDamagedDatasetSource: a dataset: source whose shard changed since it
// was committed is named before the pipeline starts.
func TestDamagedDatasetSource(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	writeFile(t, filepath.Join(dir, "a.jsonl"), alpacaLines(20, 0))
	writeFile(t, filepath.Join(dir, "base.yaml"), []byte("name: base\nsources:\n  - {name: a, path: a.jsonl, format: alpaca}\n"))
	writeFile(t, filepath.Join(dir, "child.yaml"), []byte("name: child\nsources:\n  - {name: b, dataset: base@v1}\n"))
	if r := sieve(t, "run", filepath.Join(dir, "base.yaml"), "--store", store, "--quiet"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	shards, _ := filepath.Glob(filepath.Join(store, "base", "v1", "data", "*.parquet"))
	if len(shards) == 0 {
		t.Fatal("no shards")
	}
	b, _ := os.ReadFile(shards[0])
	for i := len(b) / 3; i < len(b)/3+16; i++ {
		b[i] ^= 0xff
	}
	os.WriteFile(shards[0], b, 0o644)
	r := sieve(t, "run", filepath.Join(dir, "child.yaml"), "--store", store)
	oneErrorLine(t, r, 1, "base@v1", filepath.Base(shards[0]), "damaged")
}

// TestDecontaminateGlobExpands runs the README's decontaminate stage: the
// glob is expanded relative to the recipe.
func TestDecontaminateGlobExpands(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), alpacaLines(20, 0))
	writeFile(t, filepath.Join(dir, "evals", "e.jsonl"), []byte(`{"question": "What is 3 plus 3?", "answer": "It is 9."}`+"\n"))
	writeFile(t, filepath.Join(dir, "r.yaml"), []byte("name: p\nsources:\n  - {name: a, path: a.jsonl, format: alpaca}\nstages:\n  - decontaminate: {files: [evals/*.jsonl], n: 3}\n"))
	store := filepath.Join(dir, "store")
	r := sieve(t, "run", filepath.Join(dir, "r.yaml"), "--store", store)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	m := readManifest(t, filepath.Join(store, "p", "v1"))
	if m.Funnel.Written != 19 {
		t.Errorf("written %d, want 19 (one sample overlaps the benchmark)", m.Funnel.Written)
	}
}

// TestBadContainersWarn: a non-gzip .gz and a non-zstd .zst are handled
// alike (a dead letter for the file, a warning), and every whole-file
// problem is a warning on stderr.
func TestBadContainersWarn(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "in", "good.jsonl"), alpacaLines(40, 0))
	writeFile(t, filepath.Join(dir, "in", "notgz.jsonl.gz"), []byte("plain text, not gzip\n"))
	writeFile(t, filepath.Join(dir, "in", "notzst.jsonl.zst"), []byte("plain text, not zstd\n"))
	gz := gzipped(t, alpacaLines(30, 100))
	writeFile(t, filepath.Join(dir, "in", "trunc.jsonl.gz"), gz[:len(gz)/2])
	writeFile(t, filepath.Join(dir, "in", "broken.json"), []byte(`[{"instruction": "a", "output": "b"}, {"instruction": "c", "output": "d"}, {"instruction": "e", "output": "f"}, {"instruction": "g", "outp`))
	writeFile(t, filepath.Join(dir, "r.yaml"), []byte("name: w\nsources:\n  - {name: a, path: 'in/*', format: alpaca}\n"))
	store := filepath.Join(dir, "store")
	r := sieve(t, "run", filepath.Join(dir, "r.yaml"), "--store", store, "--max-dead-fraction=1")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"notgz.jsonl.gz: not gzip data", "notzst.jsonl.zst: not zstd data", "trunc.jsonl.gz: truncated gzip stream after ", "broken.json: JSON array broken at element 3"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.stderr)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stderr), "\n") {
		if !strings.HasPrefix(line, "sieve: warning: ") {
			t.Errorf("stderr line %q", line)
		}
	}
	m := readManifest(t, filepath.Join(store, "w", "v1"))
	for _, in := range m.Inputs {
		if strings.HasSuffix(in.File, "notgz.jsonl.gz") || strings.HasSuffix(in.File, "notzst.jsonl.zst") {
			if in.Records != 1 || in.Dead != 1 {
				t.Errorf("%s: records %d dead %d, want one dead letter for the file", in.File, in.Records, in.Dead)
			}
		}
	}
}

// TestMaxDeadFraction: a file mostly garbage fails the run, naming the
// file and the fraction; nothing is committed. --max-dead-fraction=1
// turns the check off (the warning stays).
func TestMaxDeadFraction(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	b.Write(alpacaLines(1, 0))
	for i := 0; i < 19; i++ {
		fmt.Fprintf(&b, "garbage %d\n", i)
	}
	writeFile(t, filepath.Join(dir, "g.jsonl"), b.Bytes())
	writeFile(t, filepath.Join(dir, "r.yaml"), []byte("name: g\nsources:\n  - {name: a, path: g.jsonl, format: alpaca}\n"))
	store := filepath.Join(dir, "store")
	r := sieve(t, "run", filepath.Join(dir, "r.yaml"), "--store", store)
	oneErrorLine(t, r, 1, "g.jsonl", "19 of 20 records dead-lettered", "--max-dead-fraction")
	if _, err := os.Stat(filepath.Join(store, "g", "v1")); !os.IsNotExist(err) {
		t.Error("a failed run committed a version")
	}
	r = sieve(t, "run", filepath.Join(dir, "r.yaml"), "--store", store, "--max-dead-fraction", "1")
	if r.code != 0 || !strings.Contains(r.stderr, "sieve: warning: ") || !strings.Contains(r.stderr, "19 of 20 records dead-lettered") {
		t.Errorf("disabled: exit %d, stderr %q", r.code, r.stderr)
	}
	r = sieve(t, "run", filepath.Join(dir, "r.yaml"), "--store", store, "--max-dead-fraction", "1.5")
	oneErrorLine(t, r, 2, "--max-dead-fraction")
}

// TestInterruptCommitsNothing: SIGINT while the shards are written, or
// after the pipeline finished and before the commit, ends the run with
// exit 130 and one line, and commits nothing.
func TestInterruptCommitsNothing(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	for i := 0; i < 60000; i++ {
		fmt.Fprintf(&b, `{"instruction": "Tell me fact %d about the number %d, please, at some length.", "output": "Fact %d: the number %d is %s."}`+"\n", i, i*7, i, i*7, strings.Repeat("interesting ", 1+i%9))
	}
	writeFile(t, filepath.Join(dir, "big.jsonl"), b.Bytes())
	recipe := filepath.Join(dir, "r.yaml")
	writeFile(t, recipe, []byte("name: big\nsources:\n  - {name: a, path: big.jsonl, format: alpaca}\nstages:\n  - exact_dedup\noutput:\n  shards: 4\n"))
	store := filepath.Join(dir, "store")
	staging := filepath.Join(store, "big", "_staging")
	interrupt := func(t *testing.T, env []string, ready func() bool) {
		t.Helper()
		cmd := exec.Command(sieveBin, "run", recipe, "--store", store)
		cmd.Env = append(os.Environ(), env...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		deadline := time.Now().Add(3 * time.Minute)
		for !ready() {
			select {
			case <-done:
				t.Fatalf("the run exited before the interrupt: %s", stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatal("not ready after 3 minutes")
			}
			time.Sleep(time.Millisecond)
		}
		cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Fatal("the run went on 30 s after SIGINT")
		}
		r := result{code: cmd.ProcessState.ExitCode(), stderr: stderr.String()}
		oneErrorLine(t, r, 130, "interrupted; nothing committed")
		if _, err := os.Stat(filepath.Join(store, "big", "v1")); !os.IsNotExist(err) {
			t.Error("an interrupted run committed a version")
		}
		if left, _ := filepath.Glob(filepath.Join(staging, "*")); len(left) != 0 {
			t.Errorf("staging left: %v", left)
		}
	}
	t.Run("while writing", func(t *testing.T) {
		interrupt(t, nil, func() bool {
			shards, _ := filepath.Glob(filepath.Join(staging, "*", "*", "*"))
			return len(shards) > 0
		})
	})
	t.Run("before the commit", func(t *testing.T) {
		marker := filepath.Join(dir, "paused")
		interrupt(t, []string{pipelines.PauseAfterPipelineEnv + "=" + marker}, func() bool {
			_, err := os.Stat(marker)
			return err == nil
		})
	})
}

// TestRunnerAndPrismErrors: sieve prism on a busy or invalid port says so
// in one line.
func TestPrismPortErrors(t *testing.T) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).Port
	oneErrorLine(t, sieve(t, "prism", "--job_port", fmt.Sprint(busy)), 1, fmt.Sprint(busy), "in use")
	oneErrorLine(t, sieve(t, "prism", "--job_port", "99999"), 2, "99999", "port")
}

// TestTrainRejectsZeroSizes: zero is not a default for the sizes of
// training.
func TestTrainRejectsZeroSizes(t *testing.T) {
	for _, f := range []string{"--seq-len", "--batch-size", "--epochs", "--grad-accum"} {
		oneErrorLine(t, sieve(t, "train", "--data", "x@v1", "--init", "nowhere.json", f, "0"), 2, f+" 0")
	}
}
