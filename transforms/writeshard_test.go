package transforms

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

// keeperDrop drops samples whose answer contains word and says it keeps ids.
type keeperDrop struct{ word string }

func (k keeperDrop) Apply(_ context.Context, v *datasets.Sample) *datasets.Rejected {
	if strings.Contains(v.Messages[1].Content, k.word) {
		return &datasets.Rejected{Stage: "f", Reason: "test.word", Sample: *v}
	}
	return nil
}

func (keeperDrop) KeepsIDs() {}

// plainDrop is keeperDrop without the claim.
type plainDrop struct{ k keeperDrop }

func (p plainDrop) Apply(ctx context.Context, v *datasets.Sample) *datasets.Rejected {
	return p.k.Apply(ctx, v)
}

// rewrite changes the answer and so the id.
type rewrite struct{}

func (rewrite) Apply(_ context.Context, v *datasets.Sample) *datasets.Rejected {
	v.Messages = []datasets.Message{v.Messages[0], {Role: datasets.RoleAssistant, Content: v.Messages[1].Content + "!"}}
	v.ID = datasets.ContentID(v.Messages)
	return nil
}

// lyingRewrite is rewrite claiming to keep ids.
type lyingRewrite struct{ rewrite }

func (lyingRewrite) KeepsIDs() {}

// TestWriteShardDirect: where no tail step changes ids, the shard writer
// writes the merged samples straight into the shard instead of sorting
// them again; the shard's bytes are those of the sorting path (the same
// step without its KeepsIDs claim, with a budget that spills). A step
// that does change ids takes the sorting path and its shard is in the
// new ids' order; one that changes ids while claiming not to is caught
// (an error naming the order), not written out of order.
func TestWriteShardDirect(t *testing.T) {
	ctx := context.Background()
	spill := t.TempDir()
	const key = "data/train-00000-of-00001.parquet"
	var runs []string
	for r := range 3 {
		var recs []runRecord
		for i := range 1000 {
			n := r*1000 + i
			msgs := []datasets.Message{{Role: datasets.RoleUser, Content: fmt.Sprintf("question %d", n)},
				{Role: datasets.RoleAssistant, Content: fmt.Sprintf("answer %d %s", n, strings.Repeat("word ", n%17))}}
			s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs, Source: datasets.Source{Dataset: "d", File: "f.jsonl", Index: int64(n)}}
			recs = append(recs, runRecord{key: sampleKey(nil, s.ID, "d", "f.jsonl", int64(n)), payload: s.AppendBinary(nil)})
		}
		p, err := spillRun(ctx, spill, "s", recs)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, p)
	}
	write := func(step Step) ([]byte, error) {
		dir := t.TempDir()
		f := &writeSpilledFn{Cfg: WriteConfig{Dir: dir, Tail: []TailStep{{Step: &StepSpec{Stage: "f"}}}},
			Spill: SpillConfig{Dir: spill, Budget: 32 << 10}}
		if _, err := f.writeShard(ctx, key, runs, []Step{step}); err != nil {
			return nil, err
		}
		return os.ReadFile(filepath.Join(dir, key))
	}
	if !keepsIDs([]Step{keeperDrop{}}) || keepsIDs([]Step{plainDrop{}}) || keepsIDs([]Step{&piiStep{}}) || !keepsIDs([]Step{&filterStep{}}) {
		t.Fatal("keepsIDs classifies the steps wrongly")
	}
	direct, err := write(keeperDrop{"word word word word"})
	if err != nil {
		t.Fatal(err)
	}
	sorted, err := write(plainDrop{keeperDrop{"word word word word"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(direct, sorted) {
		t.Fatalf("direct shard (%d bytes) differs from the sorted one (%d bytes)", len(direct), len(sorted))
	}
	ss, err := datasets.ReadShard(bytes.NewReader(direct), int64(len(direct)))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) == 0 || len(ss) >= 3000 {
		t.Fatalf("%d rows kept of 3000", len(ss))
	}
	rewritten, err := write(rewrite{})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := datasets.ReadShard(bytes.NewReader(rewritten), int64(len(rewritten)))
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i-1].ID > rs[i].ID {
			t.Fatalf("rewritten shard out of id order at row %d", i)
		}
	}
	if _, err := write(lyingRewrite{}); err == nil || !strings.Contains(err.Error(), "out of order") {
		t.Fatalf("a step that changes ids while claiming not to: err = %v", err)
	}
}
