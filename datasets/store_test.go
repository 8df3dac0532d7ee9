package datasets

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// fakeVersion commits a small version of dataset name: shards real
// Parquet shards of rows samples each, the given content id and parents.
func fakeVersion(t *testing.T, st Store, name, contentID string, shards int, parents ...string) *Manifest {
	t.Helper()
	staging := st.NewStaging(name)
	if err := os.MkdirAll(filepath.Join(staging, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Manifest{Format: ManifestFormat, Name: name, ContentID: contentID, Parents: parents}
	sp := Split{Name: "train"}
	for i := 0; i < shards; i++ {
		var buf bytes.Buffer
		w, err := NewShardWriter(&buf, ShardOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 3; j++ {
			s := Sample{ID: name + string(rune('a'+i)) + string(rune('a'+j)), Messages: []Message{{Role: "user", Content: "q"}, {Role: "assistant", Content: "a"}}}
			if err := w.Write(&s); err != nil {
				t.Fatal(err)
			}
		}
		stats, err := w.Close()
		if err != nil {
			t.Fatal(err)
		}
		rel := "data/train-0000" + string(rune('0'+i)) + ".parquet"
		if err := os.WriteFile(filepath.Join(staging, rel), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		sp.Shards = append(sp.Shards, Shard{Path: rel, Rows: stats.Rows, Bytes: stats.Bytes, SHA256: stats.SHA256})
		sp.Rows += stats.Rows
		sp.Bytes += stats.Bytes
	}
	m.Splits = []Split{sp}
	m.Totals = Totals{Rows: sp.Rows, Bytes: sp.Bytes, Shards: len(sp.Shards)}
	if _, err := st.Commit(context.Background(), staging, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStoreNeverReusesARemovedVersionNumber(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	for _, cid := range []string{"c1", "c2", "c3"} {
		fakeVersion(t, st, "demo", cid, 1)
	}
	if err := st.Remove(ctx, Ref{Name: "demo", Version: "v3"}, false); err != nil {
		t.Fatal(err)
	}
	m := fakeVersion(t, st, "demo", "other", 1)
	if m.Version != "v4" {
		t.Errorf("after rm demo@v3 the next commit is %s, want v4 (numbers are never reused)", m.Version)
	}
	// Removing every version keeps the mark too.
	for _, v := range []string{"v1", "v2", "v4"} {
		if err := st.Remove(ctx, Ref{Name: "demo", Version: v}, false); err != nil {
			t.Fatal(err)
		}
	}
	if m := fakeVersion(t, st, "demo", "again", 1); m.Version != "v5" {
		t.Errorf("after removing every version the next commit is %s, want v5", m.Version)
	}
}

func TestStoreChildOfARemovedParentIsNotAChildOfItsSuccessor(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	fakeVersion(t, st, "unit", "old", 1)
	fakeVersion(t, st, "child", "kid", 1, "unit@v1")
	if err := st.Remove(ctx, Ref{Name: "unit", Version: "v1"}, true); err != nil {
		t.Fatal(err)
	}
	m := fakeVersion(t, st, "unit", "new", 1)
	children, err := st.Children(ctx, Ref{Name: "unit", Version: m.Version})
	if err != nil {
		t.Fatal(err)
	}
	if m.Version == "v1" || len(children) != 0 {
		t.Errorf("new data committed as unit@%s, children %v: child@v1 was built from the removed unit@v1", m.Version, children)
	}
}

func TestStoreCommitsPastAVersionDirWithoutManifest(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	fakeVersion(t, st, "demo", "c1", 1)
	// What an interrupted rm leaves: the manifest gone, the files not.
	broken := st.VersionDir("demo", "v2")
	os.MkdirAll(filepath.Join(broken, "data"), 0o755)
	os.WriteFile(filepath.Join(broken, "data", "train-00000.parquet"), []byte("x"), 0o644)
	m := fakeVersion(t, st, "demo", "c2", 1)
	if m.Version != "v3" {
		t.Errorf("committed as %s, want v3", m.Version)
	}
	if vs, _ := st.Versions(ctx, "demo"); !reflect.DeepEqual(vs, []string{"v1", "v3"}) {
		t.Errorf("versions %v", vs)
	}
	// rm removes the leftover directory.
	if err := st.Remove(ctx, Ref{Name: "demo", Version: "v2"}, false); err != nil {
		t.Errorf("rm of a version directory without manifest: %v", err)
	}
	if _, err := os.Stat(broken); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", broken, err)
	}
}

func TestStoreRemoveLeavesNothingBehind(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	fakeVersion(t, st, "demo", "c1", 2)
	fakeVersion(t, st, "demo", "c2", 2)
	if err := st.Remove(ctx, Ref{Name: "demo", Version: "v1"}, false); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(st.DatasetDir("demo"))
	for _, e := range entries {
		if e.IsDir() && e.Name() != "v2" {
			t.Errorf("left in the dataset directory: %s", e.Name())
		}
	}
}

func TestStoreUpToDateOnlyWhenTheVersionIsWhole(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	m := fakeVersion(t, st, "demo", "c1", 2)
	if v, ok, err := st.FindContent(ctx, "demo", "c1"); err != nil || !ok || v != "v1" {
		t.Fatalf("FindContent on a sound version: %s %v %v", v, ok, err)
	}
	os.Remove(filepath.Join(st.VersionDir("demo", "v1"), m.Splits[0].Shards[1].Path))
	if v, ok, err := st.FindContent(ctx, "demo", "c1"); err != nil || ok {
		t.Errorf("FindContent with a shard deleted: %s %v %v; want not found", v, ok, err)
	}
}

func TestStoreCleanStagingKeepsALiveRunsOldStaging(t *testing.T) {
	st := Store{Root: t.TempDir()}
	staging := st.NewStaging("demo")
	os.MkdirAll(filepath.Join(staging, "data"), 0o755)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(filepath.Join(staging, "data"), old, old)
	os.Chtimes(staging, old, old)
	if n, err := st.CleanStaging("demo", time.Hour); err != nil || n != 0 {
		t.Errorf("cleaned %d (%v)", n, err)
	}
	if _, err := os.Stat(staging); err != nil {
		t.Errorf("a live run's staging was removed: %v", err)
	}
	st.Discard(staging)
	if _, err := os.Stat(staging); !os.IsNotExist(err) {
		t.Errorf("discard: %v", err)
	}
}

func TestStoreFindIntactNamesTheMissingShard(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	m := fakeVersion(t, st, "demo", "c1", 2)
	gone := m.Splits[0].Shards[0].Path
	os.Remove(filepath.Join(st.VersionDir("demo", "v1"), gone))
	var warnings []string
	_, ok, err := st.FindIntact(ctx, "demo", "c1", func(s string) { warnings = append(warnings, s) })
	if err != nil || ok {
		t.Fatalf("found %v (%v)", ok, err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "demo@v1") || !strings.Contains(warnings[0], gone) || !strings.Contains(warnings[0], "missing") {
		t.Errorf("warnings %q", warnings)
	}
	// A resized shard is damage too.
	m2 := fakeVersion(t, st, "demo", "c2", 1)
	f := filepath.Join(st.VersionDir("demo", m2.Version), m2.Splits[0].Shards[0].Path)
	data, _ := os.ReadFile(f)
	os.WriteFile(f, data[:len(data)-1], 0o644)
	if _, ok, _ := st.FindIntact(ctx, "demo", "c2", nil); ok {
		t.Error("a truncated shard passed as up to date")
	}
}

func TestStoreParentsRecordContentIDs(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	p := fakeVersion(t, st, "unit", "parent-A", 1)
	// A child as a run makes it: parents by name and content id.
	staging := st.NewStaging("child")
	m := &Manifest{Format: ManifestFormat, Name: "child", ContentID: "kid"}
	m.AddParent("unit@v1", p.ContentID)
	if _, err := st.Commit(ctx, staging, m); err != nil {
		t.Fatal(err)
	}
	cm, err := st.ReadManifest(ctx, "child", "v1")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := cm.ParentContentID("unit@v1"); !ok || got != "parent-A" {
		t.Fatalf("recorded parent content id %q %v", got, ok)
	}
	if checks := st.CheckParents(ctx, cm); len(checks) != 1 || checks[0].Problem() != "" {
		t.Errorf("sound parent: %+v", checks)
	}
	// Someone replaces unit@v1's manifest (an older store, a hand edit):
	// the name no longer holds the parent.
	pm, _ := st.ReadManifest(ctx, "unit", "v1")
	pm.ContentID = "parent-B"
	data, _ := json.Marshal(pm)
	os.WriteFile(filepath.Join(st.VersionDir("unit", "v1"), ManifestFile), data, 0o644)
	checks := st.CheckParents(ctx, cm)
	if len(checks) != 1 || !checks[0].Changed() || !strings.Contains(checks[0].Problem(), "content id differs") {
		t.Errorf("changed parent: %+v", checks)
	}
	if children, _ := st.Children(ctx, Ref{Name: "unit", Version: "v1"}); len(children) != 0 {
		t.Errorf("children of the replaced unit@v1: %v", children)
	}
	if err := st.Remove(ctx, Ref{Name: "unit", Version: "v1"}, false); err != nil {
		t.Errorf("rm of a version whose name a child recorded with another content id: %v", err)
	}
	if checks := st.CheckParents(ctx, cm); !checks[0].Missing {
		t.Errorf("removed parent: %+v", checks)
	}
}

func TestStoreIncompleteListsDirsWithoutManifest(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	fakeVersion(t, st, "demo", "c1", 1)
	os.MkdirAll(st.VersionDir("demo", "v7"), 0o755)
	got, err := st.Incomplete(ctx, "demo")
	if err != nil || !reflect.DeepEqual(got, []string{"v7"}) {
		t.Errorf("incomplete %v (%v)", got, err)
	}
	if m := fakeVersion(t, st, "demo", "c2", 1); m.Version != "v8" {
		t.Errorf("committed as %s, want v8", m.Version)
	}
}

func TestStoreLeaseIsRenewedAndStaleLeasesAreCleaned(t *testing.T) {
	defer func(d time.Duration) { LeaseRenew = d }(LeaseRenew)
	LeaseRenew = 20 * time.Millisecond
	st := Store{Root: t.TempDir()}
	staging := st.NewStaging("demo")
	lease := filepath.Join(staging, LeaseFile)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(lease, old, old)
	deadline := time.Now().Add(5 * time.Second)
	for {
		info, err := os.Stat(lease)
		if err != nil {
			t.Fatal(err)
		}
		if time.Since(info.ModTime()) < time.Minute {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lease was not renewed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// A staging directory whose lease nobody renews (a run stopped or on
	// another host) goes once the lease is older than the age.
	stale := filepath.Join(st.DatasetDir("demo"), stagingDir, "20200101T000000Z-1-abcdef")
	os.MkdirAll(filepath.Join(stale, "data"), 0o755)
	os.WriteFile(filepath.Join(stale, LeaseFile), []byte("1 elsewhere 2020-01-01T00:00:00Z\n"), 0o644)
	os.Chtimes(filepath.Join(stale, LeaseFile), old, old)
	// A fresh lease of a process of this host that is gone: removed too.
	host, _ := os.Hostname()
	dead := filepath.Join(st.DatasetDir("demo"), stagingDir, "20200101T000000Z-2-abcdef")
	os.MkdirAll(dead, 0o755)
	os.WriteFile(filepath.Join(dead, LeaseFile), []byte(fmt.Sprintf("%d %s now\n", deadPid(t), host)), 0o644)
	if n, err := st.CleanStaging("demo", time.Hour); err != nil || n != 2 {
		t.Errorf("cleaned %d (%v), want 2", n, err)
	}
	if _, err := os.Stat(staging); err != nil {
		t.Errorf("the live staging went: %v", err)
	}
	// Commit takes the lease out of the version and stops renewing it.
	m := &Manifest{Format: ManifestFormat, Name: "demo"}
	v, err := st.Commit(context.Background(), staging, m)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(st.VersionDir("demo", v), LeaseFile)); !os.IsNotExist(err) {
		t.Errorf("lease in the committed version: %v", err)
	}
}

// deadPid returns the pid of a process that has ended.
func deadPid(t *testing.T) int {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip("no true(1):", err)
	}
	return cmd.Process.Pid
}

func TestStoreLockExcludesAndBreaksStaleLocks(t *testing.T) {
	ctx := context.Background()
	st := Store{Root: t.TempDir()}
	unlock, err := st.Lock(ctx, "demo", nil)
	if err != nil {
		t.Fatal(err)
	}
	// A second run waits, and says for whom.
	var told []string
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := st.Lock(short, "demo", func(s string) { told = append(told, s) }); err == nil {
		t.Fatal("a second lock was granted while the first is held")
	}
	if len(told) != 1 || !strings.Contains(told[0], fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("waiting notices %q", told)
	}
	// It gets the lock once the first lets go.
	got := make(chan error, 1)
	go func() {
		u, err := st.Lock(ctx, "demo", nil)
		if err == nil {
			u()
		}
		got <- err
	}()
	time.Sleep(100 * time.Millisecond)
	unlock()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting lock was not granted after unlock")
	}
	if _, err := os.Stat(filepath.Join(st.DatasetDir("demo"), LockFile)); !os.IsNotExist(err) {
		t.Errorf("lock file left: %v", err)
	}
	// A lock left by a killed run of this host is broken at once.
	host, _ := os.Hostname()
	os.WriteFile(filepath.Join(st.DatasetDir("demo"), LockFile), []byte(fmt.Sprintf("%d %s 2020-01-01T00:00:00Z\n", deadPid(t), host)), 0o644)
	quick, cancel2 := context.WithTimeout(ctx, 2*time.Second)
	defer cancel2()
	u, err := st.Lock(quick, "demo", nil)
	if err != nil {
		t.Fatalf("stale lock not broken: %v", err)
	}
	u()
	// Another host's lock is broken only once unrenewed for LockStale.
	other := filepath.Join(st.DatasetDir("demo"), LockFile)
	os.WriteFile(other, []byte("1 elsewhere 2020-01-01T00:00:00Z\n"), 0o644)
	short2, cancel3 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel3()
	if _, err := st.Lock(short2, "demo", nil); err == nil {
		t.Error("another host's fresh lock was broken")
	}
	old := time.Now().Add(-LockStale - time.Minute)
	os.Chtimes(other, old, old)
	if u, err := st.Lock(ctx, "demo", nil); err != nil {
		t.Errorf("another host's stale lock: %v", err)
	} else {
		u()
	}
}
