package datasets

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestReadSieveShardByAlias: a shard of a stored version read as a
// dataset: source is opened at its real path and named by its alias
// (dataset:NAME@CONTENT_ID/PATH) in samples, not by where the store is.
func TestReadSieveShardByAlias(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewShardWriter(&buf, ShardOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msgs := []Message{{RoleUser, fmt.Sprint("q", i)}, {RoleAssistant, "a"}}
		s := Sample{ID: ContentID(msgs), Messages: msgs}
		if err := w.Write(&s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "train-00000-of-00001.parquet")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	v := &Version{Ref: Ref{Name: "base", Version: "v1"}, Manifest: &Manifest{ContentID: "0123abcd"}}
	alias := v.ShardName(Shard{Path: "data/train-00000-of-00001.parquet"})
	if alias != "dataset:base@0123abcd/data/train-00000-of-00001.parquet" {
		t.Fatalf("ShardName = %q", alias)
	}
	var got []Sample
	st, err := ReadSamples(context.Background(), path, ReadOptions{Source: "b", Format: FormatSieve, Alias: alias},
		func(s Sample) error { got = append(got, s); return nil }, func(DeadLetter) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || st.File != alias {
		t.Fatalf("read %d samples, file %q", len(got), st.File)
	}
	for _, s := range got {
		if s.Source.File != alias {
			t.Errorf("sample %s names %q, want %q", s.ID, s.Source.File, alias)
		}
	}
}
