package datasets

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestBadContainersAreDeadLetters: a .gz that is not gzip and a .zst
// that is not zstd are handled alike, one dead letter for the file with
// a reason that says so; truncated streams and broken arrays say where
// they broke.
func TestBadContainersAreDeadLetters(t *testing.T) {
	dir := t.TempDir()
	var lines bytes.Buffer
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&lines, `{"text": "record number %d with some text to compress %s"}`+"\n", i, strings.Repeat("x", i))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(lines.Bytes())
	zw.Close()
	var zs bytes.Buffer
	enc, _ := zstd.NewWriter(&zs)
	enc.Write(lines.Bytes())
	enc.Close()
	files := map[string][]byte{
		"notgz.jsonl.gz":   []byte("{\"text\": \"plain\"}\n"),
		"notzst.jsonl.zst": []byte("{\"text\": \"plain\"}\n"),
		"trunc.jsonl.gz":   gz.Bytes()[:gz.Len()/2],
		"trunc.jsonl.zst":  zs.Bytes()[:zs.Len()/2],
		"empty.jsonl.gz":   nil,
		"broken.json":      []byte(`[{"text":"one"}, {"text":"two"}, {"text":"three"}, {"text": tr`),
	}
	want := map[string]string{
		"notgz.jsonl.gz":   "not gzip data",
		"notzst.jsonl.zst": "not zstd data",
		"trunc.jsonl.gz":   "truncated gzip stream after ",
		"trunc.jsonl.zst":  "zstd stream after ",
		"broken.json":      "JSON array broken at element 3",
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		os.WriteFile(path, data, 0o644)
		var dead []DeadLetter
		st, err := ReadSamples(context.Background(), path, ReadOptions{Format: FormatText},
			func(Sample) error { return nil }, func(d DeadLetter) error { dead = append(dead, d); return nil })
		if err != nil {
			t.Errorf("%s: error %v, want a dead letter", name, err)
			continue
		}
		if name == "empty.jsonl.gz" {
			if st.Records != 0 || len(dead) != 0 {
				t.Errorf("empty: %+v %+v", st, dead)
			}
			continue
		}
		if len(dead) != 1 || dead[0].Reason != UnreadableReason || !strings.Contains(dead[0].Detail, want[name]) || st.Dead != 1 {
			t.Errorf("%s: dead %+v, stats %+v, want one %q with %q", name, dead, st, UnreadableReason, want[name])
		}
		if strings.HasPrefix(name, "not") && st.Records != 1 {
			t.Errorf("%s: records %d, want 1 (the file)", name, st.Records)
		}
		if name == "trunc.jsonl.gz" && st.Records < 2 {
			t.Errorf("%s: records %d: the records before the break are read", name, st.Records)
		}
	}
}

// TestShardFooterBounded: a huge field does not become a huge footer
// (column chunk statistics are truncated).
func TestShardFooterBounded(t *testing.T) {
	big := strings.Repeat("z", 4<<20)
	s := shardTestSample("huge", "data/"+strings.Repeat("f", 1<<20)+".jsonl", 0,
		Message{RoleUser, big}, Message{RoleAssistant, "a" + big})
	data, _ := writeShardBytes(t, []Sample{s}, ShardOptions{})
	footer := int(binary.LittleEndian.Uint32(data[len(data)-8:]))
	if footer > 64<<10 {
		t.Errorf("footer is %d bytes", footer)
	}
	sr, err := OpenShard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	got, err := sr.Next()
	if err != nil || got.Messages[0].Content != big || got.Messages[1].Content != "a"+big {
		t.Fatalf("read back: %v", err)
	}
}
