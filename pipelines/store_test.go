package pipelines

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

func TestVerifyCatchesFlippedByteAndTruncation(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	store := filepath.Join(dir, "store")
	res := runRecipe(t, dir, fixtureRecipe, store)
	ctx := context.Background()
	st := datasets.Store{Root: store}
	v, err := st.OpenVersion(ctx, datasets.Ref{Name: "unit", Version: "latest"})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := v.Verify(ctx); err != nil || len(p) != 0 {
		t.Fatalf("fresh version: problems %v, err %v", p, err)
	}
	shards := v.Shards()
	// Flip one byte in the middle of the first shard: same size, so only
	// the checksum can tell.
	first := filepath.Join(res.Dir, shards[0].Path)
	data, _ := os.ReadFile(first)
	data[len(data)/2] ^= 0x01
	os.WriteFile(first, data, 0o644)
	// Truncate the last shard.
	last := filepath.Join(res.Dir, shards[len(shards)-1].Path)
	data, _ = os.ReadFile(last)
	os.WriteFile(last, data[:len(data)-10], 0o644)

	problems, err := v.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range problems {
		got[p.Path] = p.Reason
	}
	if len(got) != 2 || !strings.Contains(got[shards[0].Path], "sha256") || !strings.Contains(got[shards[len(shards)-1].Path], "size") {
		t.Errorf("problems = %v", problems)
	}
	// Opening the version for reading refuses the truncated shard.
	if _, err := st.OpenVersion(ctx, datasets.Ref{Name: "unit", Version: "v1"}); err == nil || !strings.Contains(err.Error(), shards[len(shards)-1].Path) {
		t.Errorf("OpenVersion on a truncated shard: %v", err)
	}
	os.Remove(last)
	if _, err := st.OpenVersion(ctx, datasets.Ref{Name: "unit", Version: "v1"}); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("OpenVersion on a missing shard: %v", err)
	}
}

func TestDiffReportsKnownChanges(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	write := func(name string, lines ...string) {
		os.WriteFile(filepath.Join(dir, name), []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	}
	rec := func(q, a string) string {
		return `{"prompt":"` + q + `","completion":"` + a + `"}`
	}
	write("a.jsonl", rec("q1", "a1"), rec("q2", "a2"), rec("q3", "a3"))
	write("b.jsonl", rec("q4", "a4"), rec("q5", "a5"))
	const v1 = "name: d\nsources:\n  - {name: a, path: a.jsonl, license: mit}\n  - {name: b, path: b.jsonl, license: mit}\n"
	r1 := runRecipe(t, dir, v1, store)
	// v2: q3 removed from a, q6 and q7 added, b relicensed (its two
	// samples keep their ids but change). q1 and q2 keep their place.
	write("a.jsonl", rec("q1", "a1"), rec("q2", "a2"), rec("q6", "a6"), rec("q7", "a7"))
	const v2 = "name: d\nsources:\n  - {name: a, path: a.jsonl, license: mit}\n  - {name: b, path: b.jsonl, license: apache-2.0}\n"
	r2 := runRecipe(t, dir, v2, store)
	if r2.Manifest.Version != "v2" || r2.Manifest.ContentID == r1.Manifest.ContentID {
		t.Fatalf("second version %s content id %s", r2.Manifest.Version, r2.Manifest.ContentID)
	}
	ctx := context.Background()
	st := datasets.Store{Root: store}
	a, _ := st.OpenVersion(ctx, datasets.Ref{Name: "d", Version: "v1"})
	b, _ := st.OpenVersion(ctx, datasets.Ref{Name: "d", Version: "v2"})
	d, err := datasets.Diff(ctx, a, b)
	if err != nil {
		t.Fatal(err)
	}
	id := func(q, ans string) string {
		return datasets.ContentID([]datasets.Message{{Role: "user", Content: q}, {Role: "assistant", Content: ans}})
	}
	sorted := func(ids ...string) []string {
		for i := range ids {
			for j := i + 1; j < len(ids); j++ {
				if ids[j] < ids[i] {
					ids[i], ids[j] = ids[j], ids[i]
				}
			}
		}
		return ids
	}
	if !reflect.DeepEqual(d.Added, sorted(id("q6", "a6"), id("q7", "a7"))) {
		t.Errorf("added = %v", d.Added)
	}
	if !reflect.DeepEqual(d.Removed, []string{id("q3", "a3")}) {
		t.Errorf("removed = %v", d.Removed)
	}
	if !reflect.DeepEqual(d.Changed, sorted(id("q4", "a4"), id("q5", "a5"))) {
		t.Errorf("changed = %v", d.Changed)
	}
	if d.Same != 2 {
		t.Errorf("same = %d, want 2", d.Same)
	}
}

func TestLineageAcrossVersions(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	store := filepath.Join(dir, "store")
	parent := runRecipe(t, dir, fixtureRecipe, store)
	const child = "name: child\nsources:\n  - {name: up, dataset: unit}\nstages:\n  - exact_dedup: {key: prompt}\n"
	c1 := runRecipe(t, dir, child, store)
	m := c1.Manifest
	if !reflect.DeepEqual(m.Parents, []string{"unit@v1"}) {
		t.Errorf("parents = %v", m.Parents)
	}
	if m.Funnel.Read != parent.Manifest.Funnel.Written {
		t.Errorf("child read %d, parent wrote %d", m.Funnel.Read, parent.Manifest.Funnel.Written)
	}
	// Same parent, same child recipe: up to date. A new parent version
	// changes the child's content id and lineage.
	if again := runRecipe(t, dir, child, store); !again.UpToDate {
		t.Error("child rerun not recognised")
	}
	runRecipeOpt(t, dir, fixtureRecipe, Options{Store: store, Force: true})
	c2 := runRecipe(t, dir, child, store)
	if c2.UpToDate || !reflect.DeepEqual(c2.Manifest.Parents, []string{"unit@v2"}) {
		t.Errorf("after a new parent: up to date %v, parents %v", c2.UpToDate, c2.Manifest.Parents)
	}
	st := datasets.Store{Root: store}
	if err := st.Remove(context.Background(), datasets.Ref{Name: "unit", Version: "v1"}, false); err == nil || !strings.Contains(err.Error(), "child@v1") {
		t.Errorf("rm of a parent: %v", err)
	}
	if err := st.Remove(context.Background(), datasets.Ref{Name: "unit", Version: "v1"}, true); err != nil {
		t.Errorf("forced rm: %v", err)
	}
	if vs, _ := st.Versions(context.Background(), "unit"); !reflect.DeepEqual(vs, []string{"v2"}) {
		t.Errorf("versions after rm = %v", vs)
	}
}
