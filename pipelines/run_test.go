package pipelines

import (
	"log/slog"

	"bytes"
	"context"
	"encoding/json"
	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/internal/arrowcheck"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// fixture writes inputs with known defects:
//
//	chat.jsonl (openai, 6 records): 4 good, of which one differs from
//	  another only in case and spacing (an exact duplicate under the
//	  normalised key), 1 bad JSON line, 1 unknown role.
//	alpaca.json (JSON array, 3 records): 2 good, one a verbatim copy of a
//	  chat.jsonl conversation, 1 missing output.
//
// Read 9 = written 4 + dropped 2 (exact duplicates) + dead 3.
func fixture(t *testing.T, dir string) {
	t.Helper()
	chat := `{"messages":[{"role":"user","content":"What is a monad?"},{"role":"assistant","content":"A monoid in the category of endofunctors."}]}
{"messages":[{"role":"user","content":"what  is a MONAD?"},{"role":"assistant","content":"a monoid in the category of endofunctors."}]}
{"messages":[{"role":"system","content":"Be terse."},{"role":"user","content":"Name a prime."},{"role":"assistant","content":"Seven."}]}
{"messages": [oops
{"messages":[{"role":"narrator","content":"Once"},{"role":"assistant","content":"upon"}]}
{"messages":[{"role":"user","content":"Translate 'chat' to English."},{"role":"assistant","content":"Cat."}]}
`
	alpaca := `[
 {"instruction":"Name a prime.","input":"","output":"Seven.","system":"Be terse."},
 {"instruction":"Sum 2 and 2","input":"","output":"4"},
 {"instruction":"No answer here"}
]`
	os.WriteFile(filepath.Join(dir, "chat.jsonl"), []byte(chat), 0o644)
	os.WriteFile(filepath.Join(dir, "alpaca.json"), []byte(alpaca), 0o644)
}

const fixtureRecipe = `name: unit
sources:
  - {name: chat, path: chat.jsonl, license: mit}
  - {name: alpaca, path: "alpaca*.json", format: alpaca, license: cc-by-4.0}
stages:
  - exact_dedup: {key: conversation}
output:
  shards: 2
  test_ratio: 0.25
`

func runRecipe(t *testing.T, dir, yaml, store string) *Result {
	t.Helper()
	return runRecipeOpt(t, dir, yaml, Options{Store: store})
}

func runRecipeOpt(t *testing.T, dir, yaml string, opt Options) *Result {
	t.Helper()
	path := filepath.Join(dir, "recipe.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), r, opt)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestPipelineOnPrism(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	store := filepath.Join(dir, "store")
	res := runRecipe(t, dir, fixtureRecipe, store)
	m := res.Manifest

	f := m.Funnel
	if f.Read != 9 || f.DeadLettered != 3 || f.Written != 4 {
		t.Fatalf("funnel = %+v, want read 9, dead 3, written 4", f)
	}
	if len(f.Stages) != 1 || f.Stages[0].In != 6 || f.Stages[0].Out != 4 || f.Stages[0].Dropped[0] != (datasets.Count{Reason: "exact_duplicate", Count: 2}) {
		t.Errorf("stages = %+v", f.Stages)
	}
	wantDead := map[string]int64{"bad json": 1, "unknown role": 1, "missing field": 1}
	for _, c := range f.DeadReasons {
		if wantDead[c.Reason] != c.Count {
			t.Errorf("dead reason %s = %d, want %d", c.Reason, c.Count, wantDead[c.Reason])
		}
	}
	if m.Version != "v1" || res.Dir != filepath.Join(store, "unit", "v1") {
		t.Errorf("version %s at %s", m.Version, res.Dir)
	}

	// Every shard exists, read back by arrow-go with the manifest's counts
	// and the Hugging Face messages type.
	var rows int64
	var ids []string
	for _, sp := range m.Splits {
		want := 2
		if sp.Name == "test" {
			want = 1
		}
		if len(sp.Shards) != want {
			t.Errorf("split %s has %d shards, want %d", sp.Name, len(sp.Shards), want)
		}
		for _, sh := range sp.Shards {
			data, err := os.ReadFile(filepath.Join(res.Dir, sh.Path))
			if err != nil {
				t.Fatal(err)
			}
			info, err := arrowcheck.Inspect(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatalf("%s: %v", sh.Path, err)
			}
			if info.Rows != sh.Rows || int64(len(data)) != sh.Bytes {
				t.Errorf("%s: arrow rows %d bytes %d; manifest %d, %d", sh.Path, info.Rows, len(data), sh.Rows, sh.Bytes)
			}
			if info.MessagesType != "list<element: struct<role: utf8, content: utf8>>" {
				t.Errorf("messages type = %s", info.MessagesType)
			}
			if strings.Join(info.Codecs, ",") != "ZSTD" {
				t.Errorf("codecs = %v", info.Codecs)
			}
			rows += info.Rows
			samples, err := datasets.ReadShard(bytes.NewReader(data), int64(len(data)))
			if err != nil {
				t.Fatal(err)
			}
			for i := range samples {
				if i > 0 && !datasets.Less(&samples[i-1], &samples[i]) {
					t.Errorf("%s not sorted by id", sh.Path)
				}
				ids = append(ids, samples[i].ID)
			}
		}
	}
	if rows != m.Totals.Rows || rows != 4 {
		t.Errorf("rows in shards %d, manifest total %d", rows, m.Totals.Rows)
	}

	// The exact duplicate's survivor is the smaller id of the pair.
	rej, err := os.ReadFile(filepath.Join(res.Dir, m.Rejected))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(rej)), "\n")
	if len(lines) != 2 {
		t.Fatalf("rejected has %d lines, want 2", len(lines))
	}
	for _, l := range lines {
		var r datasets.Rejected
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.Reason != "exact_duplicate" || r.Survivor > r.Sample.ID || !contains(ids, r.Survivor) {
			t.Errorf("rejected %s survivor %s: survivor must be kept and have the smaller (or the same, for verbatim copies) id", r.Sample.ID, r.Survivor)
		}
	}
	dead, _ := os.ReadFile(filepath.Join(res.Dir, m.DeadLetters))
	var dl datasets.DeadLetter
	first := strings.SplitN(string(dead), "\n", 2)[0]
	if err := json.Unmarshal([]byte(first), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.Source != "alpaca" || dl.Index != 2 || dl.Reason != "missing field" || !strings.Contains(dl.Raw, "No answer") {
		t.Errorf("first dead letter = %+v", dl)
	}
	card, _ := os.ReadFile(filepath.Join(res.Dir, datasets.CardFile))
	if !bytes.Contains(card, []byte("path: data/train-*")) || !bytes.Contains(card, []byte("num_examples:")) {
		t.Errorf("card lacks data_files or splits:\n%s", card)
	}

	// A rerun is recognised by its content id; --force rebuilds it as a
	// new version with byte-identical shards.
	again := runRecipe(t, dir, fixtureRecipe, store)
	if !again.UpToDate || again.Manifest.Version != "v1" {
		t.Errorf("rerun: up to date %v, version %s; want the existing v1", again.UpToDate, again.Manifest.Version)
	}
	res2 := runRecipeOpt(t, dir, fixtureRecipe, Options{Store: store, Force: true})
	if res2.UpToDate || res2.Manifest.Version != "v2" || res2.Manifest.ContentID != m.ContentID {
		t.Errorf("forced rerun: version %s, content id %s (want v2, %s)", res2.Manifest.Version, res2.Manifest.ContentID, m.ContentID)
	}
	for i, sp := range m.Splits {
		for j, sh := range sp.Shards {
			if sh2 := res2.Manifest.Splits[i].Shards[j]; sh2.SHA256 != sh.SHA256 {
				t.Errorf("%s differs between runs", sh.Path)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(store, "unit", "_staging")); !os.IsNotExist(err) {
		t.Errorf("staging left behind: %v", err)
	}
}

func TestPromptKeyAndLimit(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	// Prompt-only keys make "Name a prime." (with the same system prompt)
	// a duplicate whatever the answer; limit 3 reads the first three
	// chat records only.
	yaml := `name: prompt
sources:
  - {name: chat, path: chat.jsonl, limit: 3}
  - {name: alpaca, path: alpaca.json}
stages:
  - exact_dedup: {key: prompt}
`
	res := runRecipe(t, dir, yaml, filepath.Join(dir, "store"))
	f := res.Manifest.Funnel
	// chat: 3 read (all good, 1 dup of the monad prompt); alpaca: 3 read,
	// 1 dead, "Name a prime." duplicates chat's.
	if f.Read != 6 || f.DeadLettered != 1 || f.Stages[0].Dropped[0].Count != 2 || f.Written != 3 {
		t.Fatalf("funnel = %+v", f)
	}
}

func TestMissingInputFailsBeforeRunning(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.yaml")
	os.WriteFile(path, []byte("name: x\nsources: [{name: a, path: nothing/*.jsonl}]\n"), 0o644)
	r, err := recipe.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), r, Options{Store: filepath.Join(dir, "store")})
	if err == nil || !strings.Contains(err.Error(), "source a:") || !strings.Contains(err.Error(), "no files match") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "store")); !os.IsNotExist(err) {
		t.Error("a failed run left a store behind")
	}
}

func TestMain(m *testing.M) {
	beam.Init() // installs Beam's log handler; quieten it below
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	os.Exit(m.Run())
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
