package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// commitFakeVersion commits a small version with real shards (no pipeline).
func commitFakeVersion(t *testing.T, st datasets.Store, name, contentID string, shards int, parents ...datasets.ParentRef) *datasets.Manifest {
	t.Helper()
	staging := st.NewStaging(name)
	os.MkdirAll(filepath.Join(staging, "data"), 0o755)
	m := &datasets.Manifest{Format: datasets.ManifestFormat, Name: name, ContentID: contentID}
	for _, p := range parents {
		m.AddParent(p.Ref, p.ContentID)
	}
	sp := datasets.Split{Name: "train"}
	for i := 0; i < shards; i++ {
		var buf bytes.Buffer
		w, err := datasets.NewShardWriter(&buf, datasets.ShardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 2; j++ {
			s := datasets.Sample{ID: fmt.Sprintf("%s-%d-%d", name, i, j), Messages: []datasets.Message{{Role: "user", Content: "q"}, {Role: "assistant", Content: "a"}}}
			if err := w.Write(&s); err != nil {
				t.Fatal(err)
			}
		}
		stats, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		rel := fmt.Sprintf("data/train-%05d-of-%05d.parquet", i, shards)
		os.WriteFile(filepath.Join(staging, rel), buf.Bytes(), 0o644)
		sp.Shards = append(sp.Shards, datasets.Shard{Path: rel, Rows: stats.Rows, Bytes: stats.Bytes, SHA256: stats.SHA256})
		sp.Rows += stats.Rows
		sp.Bytes += stats.Bytes
	}
	m.Splits = []datasets.Split{sp}
	m.Totals = datasets.Totals{Rows: sp.Rows, Bytes: sp.Bytes, Shards: shards}
	if _, err := st.Commit(context.Background(), staging, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func datasetsCmd(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	cmd := newDatasetsCmd(&out)
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	err := cmd.ExecuteContext(context.Background())
	return out.String(), err
}

func TestDatasetsRmLatestNamesTheVersion(t *testing.T) {
	st := datasets.Store{Root: t.TempDir()}
	commitFakeVersion(t, st, "demo", "c1", 1)
	commitFakeVersion(t, st, "demo", "c2", 1)
	out, err := datasetsCmd(t, "rm", "demo@latest", "--store", st.Root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "removed demo@v2") {
		t.Errorf("rm demo@latest said %q; want it to name demo@v2", out)
	}
}

func TestInspectWarnsOfAMissingShard(t *testing.T) {
	st := datasets.Store{Root: t.TempDir()}
	m := commitFakeVersion(t, st, "demo", "c1", 2)
	os.Remove(filepath.Join(st.VersionDir("demo", "v1"), m.Splits[0].Shards[0].Path))
	var out bytes.Buffer
	err := inspect(context.Background(), &out, "demo@v1", st.Root, 1, false)
	if err != nil {
		t.Logf("inspect: %v", err)
	}
	if !strings.Contains(out.String(), m.Splits[0].Shards[0].Path) || !strings.Contains(strings.ToLower(out.String()), "missing") {
		t.Errorf("inspect of a version with a missing shard:\n%s", out.String())
	}
	// The shard that is there is still shown.
	if !strings.Contains(out.String(), m.Splits[0].Shards[1].Path) {
		t.Errorf("the remaining shard is not shown:\n%s", out.String())
	}
}

func TestDatasetsShowAndInspectFlagAReplacedParent(t *testing.T) {
	ctx := context.Background()
	st := datasets.Store{Root: t.TempDir()}
	commitFakeVersion(t, st, "unit", "aaaaaaaaaaaaaaaa", 1)
	commitFakeVersion(t, st, "child", "kid", 1, datasets.ParentRef{Ref: "unit@v1", ContentID: "bbbbbbbbbbbbbbbb"})
	out, err := datasetsCmd(t, "show", "child@v1", "--store", st.Root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "content id differs") {
		t.Errorf("show of a child whose parent's name now holds other data:\n%s", out)
	}
	var buf bytes.Buffer
	if err := inspect(ctx, &buf, "child@v1", st.Root, 1, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "unit@v1") || !strings.Contains(buf.String(), "content id differs") {
		t.Errorf("inspect of the child:\n%s", buf.String())
	}
	// rm of the parent goes through: the child was not built from it.
	if _, err := datasetsCmd(t, "rm", "unit@v1", "--store", st.Root); err != nil {
		t.Errorf("rm: %v", err)
	}
	out, _ = datasetsCmd(t, "show", "child@v1", "--store", st.Root)
	if !strings.Contains(out, "missing") {
		t.Errorf("show after the parent is removed:\n%s", out)
	}
}

func TestDatasetsListNamesADirectoryWithoutManifest(t *testing.T) {
	st := datasets.Store{Root: t.TempDir()}
	commitFakeVersion(t, st, "demo", "c1", 1)
	os.MkdirAll(filepath.Join(st.VersionDir("demo", "v2"), "data"), 0o755)
	out, err := datasetsCmd(t, "list", "--store", st.Root)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, st.VersionDir("demo", "v2")) {
		t.Errorf("list does not name the directory without manifest:\n%s", out)
	}
	if _, err := datasetsCmd(t, "rm", "demo@v2", "--store", st.Root); err != nil {
		t.Errorf("rm of it: %v", err)
	}
	if _, err := os.Stat(st.VersionDir("demo", "v2")); !os.IsNotExist(err) {
		t.Errorf("still there: %v", err)
	}
}
