package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/bench/internal/benchenv"
)

// writeVersion fakes what a sieve run commits under store: a manifest
// and one (fake) shard.
func writeVersion(t *testing.T, store, manifest string) {
	t.Helper()
	dir := filepath.Join(store, "scale_full", "v1")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data", "train-00000-of-00001.parquet"), []byte("PAR1"), 0o644); err != nil {
		t.Fatal(err)
	}
}

const manifest = `{"runner":"prism","funnel":{"read":1000,"dead_lettered":0,"written":40,
 "stages":[{"stage":"pii","out":1000},{"stage":"exact_dedup","out":950},{"stage":"fuzzy_dedup","out":50},{"stage":"filter","out":40}]},
 "totals":{"bytes":1234}%s}`

func TestCheckSieveShuffleBytes(t *testing.T) {
	// From the manifest.
	store := t.TempDir()
	writeVersion(t, store, strings.Replace(manifest, "%s", `,"shuffle_bytes":250000,"shuffle":{"exact_dedup":200000,"fuzzy_dedup":50000}`, 1))
	extra, err := checkSieve(store, 1000, -1)
	if err != nil {
		t.Fatal(err)
	}
	if extra["shuffle_bytes"] != int64(250000) || extra["samples_out"] != int64(40) || extra["warning"] != nil {
		t.Fatalf("extra %v", extra)
	}
	if by, _ := extra["shuffle_bytes_by_grouping"].(map[string]int64); by["exact_dedup"] != 200000 {
		t.Fatalf("by grouping %v", extra["shuffle_bytes_by_grouping"])
	}
	if h, _ := extra["shards_sha256"].(string); len(h) != 64 {
		t.Fatalf("shards_sha256 %v", extra["shards_sha256"])
	}
	b := &bench{name: "scale_full_1000", kind: "full", runner: "default", n: 1000,
		runs: []result{{m: benchenv.Measurement{Seconds: 2, MaxRSSKiB: 1 << 20}, extra: extra}}}
	line := resultLine(b, nil, "m")
	if line["shuffled_bytes_per_sample"] != 250.0 || line["value"] != 500.0 || line["peak_rss_mib"] != 1024.0 {
		t.Fatalf("line %v", line)
	}
	if _, ok := line["targets_met"]; ok {
		t.Fatal("no target applies at 1000 samples")
	}

	// A funnel that is not the expected one warns; no shuffle count is
	// null.
	store = t.TempDir()
	writeVersion(t, store, strings.Replace(manifest, "%s", "", 1))
	extra, err = checkSieve(store, 1000, 41)
	if err != nil {
		t.Fatal(err)
	}
	if extra["warning"] == nil {
		t.Fatalf("extra %v", extra)
	}
	b.runs[0].extra = extra
	if line := resultLine(b, nil, "m"); line["shuffled_bytes_per_sample"] != nil {
		t.Fatalf("want null, got %v", line["shuffled_bytes_per_sample"])
	}

	// No shards: an error, not a line.
	store = t.TempDir()
	writeVersion(t, store, strings.Replace(manifest, "%s", "", 1))
	os.Remove(filepath.Join(store, "scale_full", "v1", "data", "train-00000-of-00001.parquet"))
	if _, err := checkSieve(store, 1000, -1); err == nil {
		t.Fatal("a version without shards passed")
	}
}

func TestTargets(t *testing.T) {
	run := func(secs float64, mib int64) []result {
		return []result{{m: benchenv.Measurement{Seconds: secs, MaxRSSKiB: mib << 10}}}
	}
	full := &bench{name: "scale_full_1000000", kind: "full", runner: "default", n: 1000000, runs: run(90, 7000)}
	tm := resultLine(full, nil, "m")["targets_met"].(map[string]any)
	if tm["seconds_le_100"] != true || tm["peak_rss_le_8gib"] != true {
		t.Fatalf("targets %v", tm)
	}
	full.runs = run(120, 9000)
	tm = resultLine(full, nil, "m")["targets_met"].(map[string]any)
	if tm["seconds_le_100"] != false || tm["peak_rss_le_8gib"] != false {
		t.Fatalf("targets %v", tm)
	}
	direct := &bench{name: "scale_full_1000000_direct", kind: "full", runner: "direct", n: 1000000, runs: run(90, 7000)}
	if _, ok := resultLine(direct, nil, "m")["targets_met"]; ok {
		t.Fatal("targets are for the default runner")
	}
	big := &bench{name: "scale_full_5000000", kind: "full", runner: "default", n: 5000000}
	big.err = os.ErrDeadlineExceeded
	tm = resultLine(big, nil, "m")["targets_met"].(map[string]any)
	if tm["completed"] != false {
		t.Fatalf("targets %v", tm)
	}

	duck := &bench{name: "duckdb_dedup_write_200000", kind: "duckdb", n: 200000, runs: run(10, 1000)}
	exact := &bench{name: "scale_exact_200000", kind: "exact", runner: "default", n: 200000, runs: run(5, 900)}
	line := resultLine(exact, duck, "m")
	tm = line["targets_met"].(map[string]any)
	if line["ratio"] != 2.0 || line["rss_ratio"] != 0.9 || tm["ratio_ge_1_5"] != true || tm["rss_le_duckdb"] != true {
		t.Fatalf("line %v", line)
	}
	tm = resultLine(exact, nil, "m")["targets_met"].(map[string]any)
	if tm["ratio_ge_1_5"] != false || tm["duckdb_completed"] != false {
		t.Fatalf("without DuckDB: %v", tm)
	}
}

func TestRecipeAndSelect(t *testing.T) {
	r := recipeYAML("scale_full", "/tmp/c/alpaca*.jsonl", "/tmp/s", "  - pii: {}\n", 8)
	if !strings.Contains(r, "path: '/tmp/c/alpaca*.jsonl'") || !strings.Contains(r, "stages:\n  - pii: {}\noutput:") {
		t.Fatalf("recipe:\n%s", r)
	}
	bs := []*bench{{name: "duckdb_dedup_write_200000"}, {name: "scale_exact_200000"}, {name: "scale_full_200000_direct"}}
	if got := selectBenches(bs, "scale_exact_*, duckdb_dedup_write_200000"); len(got) != 2 {
		t.Fatalf("selected %d", len(got))
	}
	if sizes, err := parseSizes("100000 1000000,5000000"); err != nil || len(sizes) != 3 {
		t.Fatalf("sizes %v, %v", sizes, err)
	}
}
