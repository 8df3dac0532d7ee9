package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sieve-data/sieve/datasets"
)

// The CLI is tested as users run it: the real binary, built once.
var sieveBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sieve-cli")
	if err != nil {
		panic(err)
	}
	sieveBin = filepath.Join(dir, "sieve")
	build := exec.Command("go", "build", "-o", sieveBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building sieve:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	code           int
	stdout, stderr string
}

func sieve(t *testing.T, args ...string) result {
	t.Helper()
	r, err := runCommand(exec.Command(sieveBin, args...))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runCommand runs cmd and returns its exit code and output; the error is
// that it could not run at all (an exit code is a result).
func runCommand(cmd *exec.Cmd) (result, error) {
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		return result{}, err
	}
	return result{code, out.String(), errb.String()}, nil
}

const demo = "../../pipelines/recipes/demo.yaml"

func readManifest(t *testing.T, dir string) datasets.Manifest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m datasets.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// shardBytes returns every shard file of a version, by relative path.
func shardBytes(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "data", "*.parquet"))
	if len(files) == 0 {
		t.Fatalf("no shards in %s", dir)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

func TestDemoRunTwiceByteIdentical(t *testing.T) {
	store := t.TempDir()
	r1 := sieve(t, "run", demo, "--store", store)
	if r1.code != 0 {
		t.Fatalf("exit %d: %s", r1.code, r1.stderr)
	}
	if !strings.Contains(r1.stdout, "demo@v1") || !strings.Contains(r1.stdout, "exact_duplicate") {
		t.Errorf("funnel table missing:\n%s", r1.stdout)
	}
	// The bundled sample's planted defects (datasets/samples/README.md):
	// 319 records, 10 malformed, 29 exact duplicates (280 left), 11 near
	// duplicates of which fuzzy dedup at Jaccard 0.7 finds 10 (the 11th,
	// prompt_completion.parquet index 28, changes 4 words of a short text
	// and is below 0.7).
	m := readManifest(t, filepath.Join(store, "demo", "v1"))
	if f := m.Funnel; f.Read != 319 || f.DeadLettered != 10 || f.Stages[0].Out != 280 || f.Stages[1].Out != 276 || f.Written != 276 {
		t.Errorf("demo funnel = %+v", f)
	}
	// The unchanged rerun is recognised; --force rebuilds byte-identically.
	same := sieve(t, "run", demo, "--store", store)
	if same.code != 0 || !strings.Contains(same.stdout, "demo@v1 is up to date") {
		t.Fatalf("rerun: exit %d, stdout %q, stderr %s", same.code, same.stdout, same.stderr)
	}
	r2 := sieve(t, "run", demo, "--store", store, "--quiet", "--force")
	if r2.code != 0 || r2.stdout != "" {
		t.Fatalf("quiet forced rerun: exit %d, stdout %q, stderr %s", r2.code, r2.stdout, r2.stderr)
	}
	a, b := shardBytes(t, filepath.Join(store, "demo", "v1")), shardBytes(t, filepath.Join(store, "demo", "v2"))
	if len(a) != 3 || len(a) != len(b) {
		t.Fatalf("shards: %d vs %d", len(a), len(b))
	}
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs between runs", name)
		}
	}
	rej := sieve(t, "inspect", "demo@v1", "--store", store, "--rejected=exact_duplicate", "-n", "2")
	if rej.code != 0 || strings.Count(rej.stdout, "── exact_dedup/exact_duplicate") != 2 || !strings.Contains(rej.stdout, "29  exact_dedup/exact_duplicate") {
		t.Errorf("inspect --rejected: exit %d\n%s%s", rej.code, rej.stdout, rej.stderr)
	}
	// inspect reads it back.
	ins := sieve(t, "inspect", "demo@latest", "--store", store, "-n", "1")
	if ins.code != 0 || !strings.Contains(ins.stdout, "demo@v2") || !strings.Contains(ins.stdout, "required group messages (LIST)") || !strings.Contains(ins.stdout, "[assistant]") {
		t.Errorf("inspect: exit %d\n%s%s", ins.code, ins.stdout, ins.stderr)
	}
}

func TestBadInputsExitWithOneLine(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("name: x\nsources:\n  - {name: a, path: a.jsonl, formt: alpaca}\n"), 0o644)
	missing := filepath.Join(dir, "missing.yaml")
	os.WriteFile(missing, []byte("name: x\nsources:\n  - {name: a, path: 'nowhere/*.jsonl'}\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"bad flag", []string{"run", demo, "--shards=3"}, 2, "flag provided but not defined: -shards"},
		{"no recipe", []string{"run"}, 2, "want exactly one recipe file"},
		{"missing recipe", []string{"run", filepath.Join(dir, "nope.yaml")}, 1, "no such file or directory"},
		{"bad recipe key", []string{"run", bad}, 2, "bad.yaml:3: sources[0].formt: unknown key"},
		{"empty glob", []string{"run", missing, "--store", filepath.Join(dir, "store")}, 1, "source a: " + filepath.Join(dir, "nowhere/*.jsonl") + ": no files match"},
		{"unknown command", []string{"frobnicate"}, 1, "unknown command"},
		{"dataflow with a local store", []string{"run", demo, "--runner=dataflow", "--store", filepath.Join(dir, "store")}, 1, "the store must be remote"},
		{"inspect missing", []string{"inspect", "nothing@v3", "--store", dir}, 1, "not a committed version"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := sieve(t, tc.args...)
			if r.code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", r.code, tc.code, r.stderr)
			}
			lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], tc.want) || !strings.HasPrefix(lines[0], "sieve: ") {
				t.Errorf("stderr = %q, want one line containing %q", r.stderr, tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "store", "x")); !os.IsNotExist(err) {
		t.Error("a failed run left a dataset directory")
	}
}

func TestHelpAndVersion(t *testing.T) {
	if r := sieve(t, "--help"); r.code != 0 || !strings.Contains(r.stdout, "run") || !strings.Contains(r.stdout, "inspect") {
		t.Errorf("help: %+v", r)
	}
	if r := sieve(t, "run", "--help"); r.code != 0 || !strings.Contains(r.stdout, "--runner=universal") {
		t.Errorf("run help: %+v", r)
	}
	if r := sieve(t, "version"); r.code != 0 || !strings.Contains(r.stdout, "Apache Beam Go SDK v2.77.0") {
		t.Errorf("version: %+v", r)
	}
}

func TestDryRunReportsRulesWithoutWriting(t *testing.T) {
	dir := t.TempDir()
	recipe := filepath.Join(dir, "r.yaml")
	abs, _ := filepath.Abs("../../datasets/samples/alpaca.jsonl")
	os.WriteFile(recipe, []byte("name: d\nsources: [{name: a, path: "+abs+"}]\nstages:\n  - exact_dedup\n  - filter\n"), 0o644)
	r := sieve(t, "run", recipe, "--store", filepath.Join(dir, "store"), "--dry-run")
	if r.code != 0 || !regexp.MustCompile(`exact_dedup\s+exact_duplicate\s+7\s`).MatchString(r.stdout) || !strings.Contains(r.stdout, "closest to the threshold") {
		t.Errorf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Error("dry run wrote a store")
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestUniversalRunnerOnPrismJobServer runs the demo through the portable
// job API against 'sieve prism' in another process, and gets the same
// shards as the in-process runner.
func TestUniversalRunnerOnPrismJobServer(t *testing.T) {
	port := freePort(t)
	server := exec.Command(sieveBin, "prism", "--job_port", fmt.Sprint(port))
	var serr bytes.Buffer
	server.Stderr = &serr
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { server.Process.Kill(); server.Wait() }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prism job server did not start: %s", serr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	store := t.TempDir()
	r := sieve(t, "run", demo, "--store", store, "--runner=universal", fmt.Sprintf("--endpoint=localhost:%d", port), "--environment_type=LOOPBACK")
	if r.code != 0 {
		t.Fatalf("universal run: exit %d: %s", r.code, r.stderr)
	}
	m := readManifest(t, filepath.Join(store, "demo", "v1"))
	if m.Runner != "universal" || m.Funnel.Written != 276 {
		t.Errorf("runner %s, written %d", m.Runner, m.Funnel.Written)
	}
	local := t.TempDir()
	if r := sieve(t, "run", demo, "--store", local, "--quiet"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	direct := t.TempDir()
	if r := sieve(t, "run", demo, "--store", direct, "--quiet", "--runner=direct"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	a, b, c := shardBytes(t, filepath.Join(store, "demo", "v1")), shardBytes(t, filepath.Join(local, "demo", "v1")), shardBytes(t, filepath.Join(direct, "demo", "v1"))
	for name, data := range a {
		if !bytes.Equal(data, b[name]) {
			t.Errorf("%s differs between the universal and the in-process prism runner", name)
		}
		if !bytes.Equal(data, c[name]) {
			t.Errorf("%s differs between prism and the direct runner", name)
		}
	}
}
