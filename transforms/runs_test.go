package transforms

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
)

// recString is a record as "key=payload" (keys and payloads of the tests
// are printable).
func recString(r runRecord) string { return string(r.key) + "=" + string(r.payload) }

func recs(kv ...string) []runRecord {
	var out []runRecord
	for _, s := range kv {
		k, p, _ := strings.Cut(s, "=")
		out = append(out, runRecord{key: []byte(k), payload: []byte(p)})
	}
	return out
}

func mergeAll(t *testing.T, paths []string) []string {
	t.Helper()
	var got []string
	if err := mergeRuns(context.Background(), paths, func(r runRecord) error {
		got = append(got, recString(r))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestMergeRunsOrder: records of several runs come out in ascending key
// order, every record once; records of one key within one run keep their
// order; an empty run is fine.
func TestMergeRunsOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	runs := [][]runRecord{
		recs("a=r0", "b=r0.1", "b=r0.2", "b=r0.3", "d=r0"),
		recs("a=r1", "b=r1", "c=r1", "e=r1"),
		nil,
		recs("b=r3", "e=r3.1", "e=r3.2"),
	}
	var paths, all []string
	for i, rs := range runs {
		p := filepath.Join(dir, fmt.Sprintf("r%d.run", i))
		if err := writeRun(ctx, p, rs); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
		for _, r := range rs {
			all = append(all, recString(r))
		}
	}
	got := mergeAll(t, paths)
	if !slices.IsSortedFunc(got, func(a, b string) int { return strings.Compare(a[:1], b[:1]) }) {
		t.Errorf("merge: keys out of order: %q", got)
	}
	a, b := slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(all))
	if !slices.Equal(a, b) {
		t.Errorf("merge: got records %q, want %q", a, b)
	}
	// Within a run, equal keys in the run's order.
	for _, seq := range [][]string{{"b=r0.1", "b=r0.2", "b=r0.3"}, {"e=r3.1", "e=r3.2"}} {
		var sub []string
		for _, g := range got {
			if slices.Contains(seq, g) {
				sub = append(sub, g)
			}
		}
		if !slices.Equal(sub, seq) {
			t.Errorf("merge: equal keys of one run as %q, want %q", sub, seq)
		}
	}
	// The records are those written, byte for byte (binary keys and
	// payloads, an empty payload, a large one).
	big := bytes.Repeat([]byte{0, 1, 2, 0xff}, 100<<10)
	bin := []runRecord{{key: []byte{0}, payload: nil}, {key: []byte{0, 0}, payload: []byte{0}}, {key: []byte{1, 0xff}, payload: big}}
	p := filepath.Join(dir, "bin.run")
	if err := writeRun(ctx, p, bin); err != nil {
		t.Fatal(err)
	}
	i := 0
	if err := mergeRuns(ctx, []string{p}, func(r runRecord) error {
		if !bytes.Equal(r.key, bin[i].key) || !bytes.Equal(r.payload, bin[i].payload) {
			t.Errorf("record %d differs (key %x, %d payload bytes)", i, r.key, len(r.payload))
		}
		i++
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if i != len(bin) {
		t.Errorf("read %d records of %d", i, len(bin))
	}
}

// TestMergeRunsEqualKeysInPathOrder: mergeRuns documents that records of
// equal keys come "in the order of paths" (and so extSorter's spilled
// order would equal its stable in-memory sort), but runHeap.Less compares
// keys only and the heap breaks ties arbitrarily: two runs give
// [b=r1 b=r0.1 b=r0.2], five runs of one key give r0 r4 r3 r2 r1.
// Skipped until the merger breaks ties by run index (runs.go).
func TestMergeRunsEqualKeysInPathOrder(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	write := func(name string, rs []runRecord) string {
		p := filepath.Join(dir, name)
		if err := writeRun(ctx, p, rs); err != nil {
			t.Fatal(err)
		}
		return p
	}
	two := []string{write("a0.run", recs("a=r0", "b=r0.1", "b=r0.2", "d=r0")), write("a1.run", recs("a=r1", "b=r1", "c=r1"))}
	if got, want := mergeAll(t, two), []string{"a=r0", "a=r1", "b=r0.1", "b=r0.2", "b=r1", "c=r1", "d=r0"}; !slices.Equal(got, want) {
		t.Errorf("two runs:\n got %q\nwant %q", got, want)
	}
	var five, want []string
	for i := 0; i < 5; i++ {
		five = append(five, write(fmt.Sprintf("k%d.run", i), recs(fmt.Sprintf("k=r%d", i))))
		want = append(want, fmt.Sprintf("k=r%d", i))
	}
	if got := mergeAll(t, five); !slices.Equal(got, want) {
		t.Errorf("equal keys of %d runs not in path order:\n got %q\nwant %q", len(five), got, want)
	}
	// An extSorter that spills equals its stable in-memory sort,
	// payloads (the order records were added) included.
	in := randomRecords(2000, 3)
	mem, _, _ := sorterOutput(t, 1<<30, in)
	t.Setenv("TMPDIR", t.TempDir())
	disk, _, _ := sorterOutput(t, 4<<10, in)
	if !slices.Equal(mem, disk) {
		t.Error("spilled extSorter: equal keys not in the order they were added")
	}
}

// randomRecords are n records of keys from a small alphabet (many equal
// keys) and payloads that say where they were added.
func randomRecords(n int, seed uint64) []runRecord {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []runRecord
	for i := 0; i < n; i++ {
		k := make([]byte, 1+rng.IntN(3))
		for j := range k {
			k[j] = byte('a' + rng.IntN(4))
		}
		out = append(out, runRecord{key: k, payload: []byte(fmt.Sprintf("%d:%s", i, strings.Repeat("x", rng.IntN(50))))})
	}
	return out
}

// sortedKeys is the keys of the records an extSorter yields, with each
// and with iter.
func sorterOutput(t *testing.T, budget int, in []runRecord) (each, iter []string, runs int) {
	t.Helper()
	ctx := context.Background()
	for pass := 0; pass < 2; pass++ {
		s := newExtSorter(budget)
		for _, r := range in {
			if err := s.add(ctx, r.key, r.payload); err != nil {
				t.Fatal(err)
			}
		}
		runs = len(s.runs)
		if pass == 0 {
			if err := s.each(ctx, func(r runRecord) error { each = append(each, recString(r)); return nil }); err != nil {
				t.Fatal(err)
			}
			continue
		}
		it, err := s.iter(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for {
			r, ok, err := it.next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			iter = append(iter, recString(r))
		}
		it.close()
		s.release()
	}
	return each, iter, runs
}

// TestExtSorterSpillEqualsMemory: an extSorter whose budget makes it
// spill dozens of runs yields the keys in the order of an in-memory sort,
// and every record once; with each and with iter. Its temporary
// directory is removed afterwards.
func TestExtSorterSpillEqualsMemory(t *testing.T) {
	in := randomRecords(3000, 1)
	ref := slices.Clone(in)
	sortRecords(ref)
	var wantKeys, wantAll []string
	for _, r := range ref {
		wantKeys = append(wantKeys, string(r.key))
		wantAll = append(wantAll, recString(r))
	}
	keys := func(rs []string) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r[:strings.IndexByte(r, '=')])
		}
		return out
	}
	memEach, memIter, memRuns := sorterOutput(t, 1<<30, in)
	if memRuns != 0 {
		t.Fatalf("in-memory sorter spilled %d runs", memRuns)
	}
	if !slices.Equal(memEach, wantAll) || !slices.Equal(memIter, wantAll) {
		t.Errorf("in-memory sort differs from a stable sort")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	diskEach, diskIter, diskRuns := sorterOutput(t, 4<<10, in)
	if diskRuns < 10 {
		t.Fatalf("a 4 KiB budget spilled only %d runs", diskRuns)
	}
	for name, got := range map[string][]string{"each": diskEach, "iter": diskIter} {
		if !slices.Equal(keys(got), wantKeys) {
			t.Errorf("%s after %d runs: keys out of order", name, diskRuns)
		}
		a, b := slices.Clone(got), slices.Clone(wantAll)
		slices.Sort(a)
		slices.Sort(b)
		if !slices.Equal(a, b) {
			t.Errorf("%s after %d runs: records lost or repeated (%d vs %d)", name, diskRuns, len(got), len(wantAll))
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("sorter left %d entries in TMPDIR", len(left))
	}
}

// TestRunTruncated: a run cut short (in the middle of an S2 block, or a
// valid stream whose last record is incomplete) is an error, not a
// shorter run.
func TestRunTruncated(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := filepath.Join(dir, "full.run")
	in := randomRecords(2000, 2)
	sortRecords(in)
	if err := writeRun(ctx, p, in); err != nil {
		t.Fatal(err)
	}
	if got := mergeAll(t, []string{p}); len(got) != len(in) {
		t.Fatalf("read %d records of %d", len(got), len(in))
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, cut := range []int{1, 7, len(b) / 2} {
		q := filepath.Join(dir, fmt.Sprintf("cut%d.run", cut))
		if err := os.WriteFile(q, b[:len(b)-cut], 0o644); err != nil {
			t.Fatal(err)
		}
		n := 0
		err := mergeRuns(ctx, []string{q}, func(runRecord) error { n++; return nil })
		if err == nil {
			t.Errorf("run missing its last %d bytes: no error (%d records read)", cut, n)
		}
	}
	// A well-formed S2 stream holding a record cut inside its key, its
	// payload length or its payload.
	for _, tail := range [][]byte{{5, 'a', 'b'}, {1, 'a'}, {1, 'a', 10, 'x'}} {
		q := filepath.Join(dir, fmt.Sprintf("rec%d.run", len(tail)))
		var buf bytes.Buffer
		zw := s2.NewWriter(&buf)
		ok := append([]byte{1, 'k', 1, 'v'}, tail...)
		if _, err := zw.Write(ok); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(q, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		var got []string
		err := mergeRuns(ctx, []string{q}, func(r runRecord) error { got = append(got, recString(r)); return nil })
		if err == nil || !strings.Contains(err.Error(), "truncated record") {
			t.Errorf("record cut to %x: err %v, want a truncated record (read %q)", tail, err, got)
		}
	}
	if _, err := openMerger(ctx, []string{filepath.Join(dir, "missing.run")}); err == nil {
		t.Error("missing run: no error")
	}
}

// TestSortRecordsTotalOrder: sortRecords (integer prefixes, an in-place
// permutation) gives the order of a plain sort by key then payload, on
// keys shorter and longer than the 8-byte prefix, sharing prefixes, with
// zero bytes, and with equal keys; every record is kept.
func TestSortRecordsTotalOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	// Sizes on both sides of the comparison and radix sorts (radixMin);
	// keys of a small alphabet (many equal prefixes, ties broken by the
	// rest of the key and the payload) and of random bytes (distinct
	// prefixes, every radix pass taken); and keys in buckets, as band
	// pairs are: one of 40 first 8 bytes and a tail of the small
	// alphabet (groups of ties of hundreds, sorted by their next 8 bytes).
	for _, tc := range []struct {
		n               int
		random, buckets bool
	}{{0, false, false}, {1, false, false}, {255, false, false}, {256, false, false}, {5000, false, false},
		{radixMin - 1, true, false}, {70000, false, false}, {70000, true, false}, {20000, false, true}} {
		n := tc.n
		in := make([]runRecord, n)
		for i := range in {
			k := make([]byte, rng.IntN(14))
			if tc.buckets {
				k = binary.BigEndian.AppendUint64(make([]byte, 0, 30), uint64(rng.IntN(40)))[:8+rng.IntN(20)]
			}
			for j := range k {
				if tc.buckets && j < 8 {
					continue
				}
				k[j] = []byte{0, 1, 'a', 'b', 0xff}[rng.IntN(5)]
				if tc.random {
					k[j] = byte(rng.Uint32())
				}
			}
			in[i] = runRecord{key: k, payload: []byte{byte(rng.IntN(3)), byte(i % 7)}}
		}
		want := slices.Clone(in)
		slices.SortStableFunc(want, compareRecords)
		got := slices.Clone(in)
		sortRecords(got)
		for i := range want {
			if compareRecords(got[i], want[i]) != 0 {
				t.Fatalf("n=%d: record %d is %q/%v; want %q/%v", n, i, got[i].key, got[i].payload, want[i].key, want[i].payload)
			}
		}
	}
}

// TestBackgroundRuns: a run spilled in the background is whole once
// wait returns (its records read back in sorted order), the next spill
// waits for the one in flight, and a write that fails reports its error
// at the next call rather than losing it.
func TestBackgroundRuns(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var b backgroundRuns
	in := randomRecords(5000, 7)
	ref := slices.Clone(in)
	sortRecords(ref)
	p1, err := b.spill(ctx, dir, "t", slices.Clone(in))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := b.spill(ctx, dir, "t", slices.Clone(in[:10]))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.wait(); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{p1: len(in), p2: 10} {
		var got []string
		if err := mergeRuns(ctx, []string{path}, func(r runRecord) error {
			got = append(got, recString(r))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(got) != want {
			t.Fatalf("%s: %d records, want %d", path, len(got), want)
		}
		if path == p1 {
			for i, r := range ref {
				if got[i] != recString(r) {
					t.Fatalf("record %d out of order", i)
				}
			}
		}
	}
	// A spill directory that is a file: the write fails in the
	// background and the error comes back.
	bad := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(bad, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := b.spill(ctx, bad, "t", slices.Clone(in[:10])); err != nil {
		t.Fatalf("spill returned %v before writing", err)
	}
	if _, err := b.spill(ctx, dir, "t", slices.Clone(in[:10])); err == nil {
		t.Fatal("the failed write's error was lost")
	}
	if err := b.wait(); err != nil {
		t.Fatalf("wait after the error was reported: %v", err)
	}
}

// BenchmarkSortRecords sorts a spill buffer of band-pair records (an
// 8-byte hash, then a 51-byte node key), the signer's biggest sort.
func BenchmarkSortRecords(b *testing.B) {
	// Band pairs (8-byte band key, 51-byte node): every key distinct, and
	// in buckets of 250 members, as a corpus of near-duplicate clusters
	// makes them (records tie on their first 8 bytes bucket by bucket).
	for _, bucket := range []int{1, 250} {
		r := rand.New(rand.NewPCG(1, 1))
		base := make([]runRecord, 200000)
		for i := range base {
			k := make([]byte, 8+51)
			binary.BigEndian.PutUint64(k, r.Uint64())
			if bucket > 1 {
				binary.BigEndian.PutUint64(k, uint64(r.IntN(len(base)/bucket))*0x9e3779b97f4a7c15)
			}
			for j := 8; j < len(k); j++ {
				k[j] = byte('a' + r.IntN(16))
			}
			base[i] = runRecord{key: k}
		}
		recs := make([]runRecord, len(base))
		b.Run(fmt.Sprintf("bucket=%d", bucket), func(b *testing.B) {
			for b.Loop() {
				copy(recs, base)
				sortRecords(recs)
			}
		})
	}
}
