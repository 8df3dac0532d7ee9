package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// versionFiles reads every file of a version directory by its path
// relative to it, but the manifest and the card (they record the run's
// time and duration).
func versionFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "manifest.json" || rel == "README.md" {
			return nil
		}
		b, err := os.ReadFile(p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for name := range out {
		if strings.HasPrefix(name, "data/") && strings.HasSuffix(name, ".parquet") {
			n++
		}
	}
	if n == 0 {
		t.Fatalf("no shards in %s", dir)
	}
	return out
}

// sameFiles checks that two versions hold the same files with the same
// bytes, both ways: every file of one is in the other.
func sameFiles(t *testing.T, what string, a, b map[string][]byte) {
	t.Helper()
	var names []string
	for name := range a {
		names = append(names, name)
	}
	for name := range b {
		if _, ok := a[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		x, inA := a[name]
		y, inB := b[name]
		switch {
		case !inA:
			t.Errorf("%s: %s only in the second run", what, name)
		case !inB:
			t.Errorf("%s: %s only in the first run", what, name)
		case !bytes.Equal(x, y):
			i := 0
			for i < len(x) && i < len(y) && x[i] == y[i] {
				i++
			}
			t.Errorf("%s: %s differs (%d vs %d bytes, first at byte %d)", what, name, len(x), len(y), i)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTwoCheckoutsByteIdentical runs the demo recipe in two copies of
// the repository's recipe and samples at different places (as two users'
// clones) and checks that the versions hold the same bytes: local
// sources are recorded relative to the recipe, not by absolute path.
func TestTwoCheckoutsByteIdentical(t *testing.T) {
	samples, _ := filepath.Glob("../../datasets/samples/*")
	var runs []map[string][]byte
	for _, home := range []string{filepath.Join(t.TempDir(), "home", "alice", "proj"), filepath.Join(t.TempDir(), "srv", "bob-clone")} {
		copyFile(t, demo, filepath.Join(home, "pipelines", "recipes", "demo.yaml"))
		for _, f := range samples {
			if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() {
				copyFile(t, f, filepath.Join(home, "datasets", "samples", filepath.Base(f)))
			}
		}
		store := filepath.Join(home, "store")
		r := sieve(t, "run", filepath.Join(home, "pipelines", "recipes", "demo.yaml"), "--store", store, "--quiet")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		m := readManifest(t, filepath.Join(store, "demo", "v1"))
		for _, in := range m.Inputs {
			if strings.Contains(in.File, home) {
				t.Errorf("manifest input names the checkout: %s", in.File)
			}
		}
		// What the groupings shuffled (which depends on the checkout's
		// paths) is in the manifest, not in the version's files.
		if m.ShuffleBytes == nil || *m.ShuffleBytes <= 0 || m.Shuffle["exact_dedup.key_runs"] <= 0 {
			t.Errorf("manifest shuffle_bytes %v, shuffle %v; want counts with exact_dedup's", m.ShuffleBytes, m.Shuffle)
		}
		runs = append(runs, versionFiles(t, filepath.Join(store, "demo", "v1")))
	}
	sameFiles(t, "two checkouts", runs[0], runs[1])
}

// smallChats writes n short seeded conversations (about 200 bytes each)
// as OpenAI messages JSONL: a tenth are exact copies of earlier ones (up
// to case and spacing), a tenth near copies (one word changed), so that
// both dedup stages have work.
func smallChats(t *testing.T, file string, n int, seed uint64) {
	t.Helper()
	words := strings.Fields("the a model data sample answer question river mountain code test value number list table light sound water energy garden planet music story history method result system network engine paper window market")
	r := rand.New(rand.NewPCG(seed, 1))
	var buf bytes.Buffer
	type chat struct{ q, a string }
	var chats []chat
	sentence := func(k int) string {
		ws := make([]string, k)
		for i := range ws {
			ws[i] = words[r.IntN(len(words))]
		}
		return strings.Join(ws, " ")
	}
	for i := 0; i < n; i++ {
		var c chat
		switch x := r.IntN(10); {
		case x == 0 && len(chats) > 0:
			c = chats[r.IntN(len(chats))]
			c.q = strings.ToUpper(c.q[:1]) + c.q[1:] + "  "
		case x == 1 && len(chats) > 0:
			c = chats[r.IntN(len(chats))]
			a := strings.Fields(c.a)
			a[r.IntN(len(a))] = words[r.IntN(len(words))]
			c.a = strings.Join(a, " ")
		default:
			c = chat{fmt.Sprintf("Question %d: why does the %s", i, sentence(6+r.IntN(6))),
				fmt.Sprintf("Because %s. Then %s.", sentence(12+r.IntN(10)), sentence(8+r.IntN(10)))}
			chats = append(chats, c)
		}
		b, _ := json.Marshal(map[string]any{"messages": []map[string]string{{"role": "user", "content": c.q}, {"role": "assistant", "content": c.a}}})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDeterministicAcrossRunnersAndParallelism runs a recipe with a
// filter, PII redaction, exact and fuzzy dedup and a split over 50,000
// generated conversations twice, on the direct runner with GOMAXPROCS=1
// and on prism with GOMAXPROCS=2 (other bundles, other interleavings),
// and checks that the two versions hold the same files with the same
// bytes, both ways.
func TestDeterministicAcrossRunnersAndParallelism(t *testing.T) {
	if testing.Short() {
		t.Skip("50,000 samples on two runners")
	}
	dir := t.TempDir()
	smallChats(t, filepath.Join(dir, "chat.jsonl"), 50000, 11)
	recipe := filepath.Join(dir, "r.yaml")
	os.WriteFile(recipe, []byte(`name: det
sources:
  - {name: chat, path: chat.jsonl}
stages:
  - filter
  - pii
  - exact_dedup: {key: conversation}
  - fuzzy_dedup: {threshold: 0.7}
output:
  shards: 5
  test_ratio: 0.1
`), 0o644)
	var runs []map[string][]byte
	for _, c := range []struct{ runner, procs string }{{"direct", "1"}, {"prism", "2"}} {
		store := filepath.Join(dir, "store-"+c.runner)
		cmd := exec.Command(sieveBin, "run", recipe, "--store", store, "--quiet", "--runner="+c.runner)
		cmd.Env = append(os.Environ(), "GOMAXPROCS="+c.procs)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s, GOMAXPROCS=%s: %v\n%s", c.runner, c.procs, err, stderr.String())
		}
		v := filepath.Join(store, "det", "v1")
		m := readManifest(t, v)
		t.Logf("%s, GOMAXPROCS=%s: %v, funnel read %d, written %d", c.runner, c.procs, time.Since(start).Round(time.Millisecond), m.Funnel.Read, m.Funnel.Written)
		if m.Funnel.Read != 50000 || m.Funnel.Written >= 45000 || m.Funnel.Written < 20000 {
			t.Fatalf("%s: funnel %+v", c.runner, m.Funnel)
		}
		runs = append(runs, versionFiles(t, v))
	}
	sameFiles(t, "direct/GOMAXPROCS=1 vs prism/GOMAXPROCS=2", runs[0], runs[1])
}
