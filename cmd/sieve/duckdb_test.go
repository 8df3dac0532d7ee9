package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestCardLoadsInDuckDB reads the demo version the way its dataset card
// says (the configs/data_files globs of its front matter) with DuckDB, an
// independent Parquet reader, and checks the manifest's counts and the
// messages type.
func TestCardLoadsInDuckDB(t *testing.T) {
	duck, err := filepath.Abs("../../bench/duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(duck, "node_modules", "@duckdb", "node-api")); err != nil {
		t.Fatalf("DuckDB for Node is not installed: run `npm ci` in bench/duckdb (make test and .ci/run do): %v", err)
	}
	store := t.TempDir()
	if r := sieve(t, "run", demo, "--store", store, "--quiet"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	dir := filepath.Join(store, "demo", "v1")
	m := readManifest(t, dir)
	card, err := os.ReadFile(filepath.Join(dir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	front := strings.SplitN(string(card), "---", 3)
	if len(front) < 3 {
		t.Fatalf("card has no front matter:\n%s", card)
	}
	re := regexp.MustCompile(`(?m)^  - split: (\w+)\n    path: (\S+)$`)
	files := re.FindAllStringSubmatch(front[1], -1)
	if len(files) != len(m.Splits) {
		t.Fatalf("card declares %d data_files, manifest has %d splits:\n%s", len(files), len(m.Splits), front[1])
	}
	var sqls []string
	for _, f := range files {
		glob := filepath.Join(dir, f[2])
		sqls = append(sqls, "SELECT count(*)::BIGINT AS n, any_value(typeof(messages)) AS t FROM read_parquet('"+glob+"')")
	}
	cmd := exec.Command("node", filepath.Join(duck, "query.mjs"))
	cmd.Args = append(cmd.Args, sqls...)
	cmd.Dir = duck
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("duckdb: %v %s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for i, f := range files {
		var rows []struct {
			N json.Number `json:"n"`
			T string      `json:"t"`
		}
		if err := json.Unmarshal([]byte(lines[i]), &rows); err != nil {
			t.Fatalf("%s: %v", lines[i], err)
		}
		var want int64 = -1
		for _, sp := range m.Splits {
			if sp.Name == f[1] {
				want = sp.Rows
			}
		}
		if rows[0].N.String() != itoa(want) {
			t.Errorf("split %s: DuckDB counts %s rows over %s, manifest says %d", f[1], rows[0].N, f[2], want)
		}
		if strings.ReplaceAll(rows[0].T, `"`, "") != "STRUCT(role VARCHAR, content VARCHAR)[]" {
			t.Errorf("split %s: DuckDB types messages as %s", f[1], rows[0].T)
		}
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
