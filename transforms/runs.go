package transforms

import (
	"bufio"
	"bytes"
	"cmp"
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/io/filesystem"
	"github.com/klauspost/compress/s2"
)

// Sorted runs: how sample bodies (and rejected samples) travel between
// stages without the runner holding them. A run is a file of records
// (key, payload) in ascending key order, S2-compressed as a stream: a
// uvarint key length, the key, a uvarint payload length, the payload.
// Keys are sampleKey: byte order is datasets.Less's order. Runs that
// cross stages live under the version's staging directory (SpillDir),
// written through Beam's filesystem package (local and gs:// alike); only
// their paths are shuffled. Runs private to one DoFn call (an external
// sort that outgrew its memory) live in the local temporary directory.
//
// The memory of a stage that reads runs is bounded by the number of runs
// it merges (one small buffer each), not by the samples in them.

// SpillDir is the directory of the run files of a version's staging
// directory; the commit removes it.
const SpillDir = "_spill"

// runBlock is the S2 block size of run files: small, since a merge keeps
// one block per open run.
const runBlock = 64 << 10

// runRecord is one record of a run.
type runRecord struct {
	key, payload []byte
}

// sampleKey is the run key of a sample: its reference (id, dataset,
// file, index), whose byte order is datasets.Less's.
func sampleKey(dst []byte, id, dataset, file string, index int64) []byte {
	dst = append(dst, id...)
	dst = append(dst, 0)
	dst = append(dst, dataset...)
	dst = append(dst, 0)
	dst = append(dst, file...)
	dst = append(dst, 0)
	// Offset so that negative indexes sort before positive ones.
	return binary.BigEndian.AppendUint64(dst, uint64(index)^(1<<63))
}

// runWriter writes one run.
type runWriter struct {
	close func() error
	bw    *bufio.Writer
	zw    *s2.Writer
	hdr   []byte
	n     int64
}

// createRun opens path for writing a run (through Beam's filesystem
// package when path is a URL or lives in a staging directory, else as a
// local file).
func createRun(ctx context.Context, path string) (*runWriter, error) {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, err
	}
	wc, err := fs.OpenWrite(ctx, path)
	if err != nil {
		fs.Close()
		return nil, err
	}
	bw := bufio.NewWriterSize(wc, 256<<10)
	zw := s2.NewWriter(bw, s2.WriterBlockSize(runBlock), s2.WriterConcurrency(1))
	return &runWriter{bw: bw, zw: zw, close: func() error {
		err := wc.Close()
		fs.Close()
		return err
	}}, nil
}

func (w *runWriter) add(key, payload []byte) error {
	w.hdr = binary.AppendUvarint(w.hdr[:0], uint64(len(key)))
	w.hdr = append(w.hdr, key...)
	w.hdr = binary.AppendUvarint(w.hdr, uint64(len(payload)))
	if _, err := w.zw.Write(w.hdr); err != nil {
		return err
	}
	_, err := w.zw.Write(payload)
	w.n++
	return err
}

// finish flushes and closes the run.
func (w *runWriter) finish() error {
	err := w.zw.Close()
	if err == nil {
		err = w.bw.Flush()
	}
	if cerr := w.close(); err == nil {
		err = cerr
	}
	return err
}

// abort closes the run without caring about errors (the caller has one).
func (w *runWriter) abort() { _ = w.close() }

// writeRun writes sorted records to path as one run.
func writeRun(ctx context.Context, path string, recs []runRecord) error {
	w, err := createRun(ctx, path)
	if err != nil {
		return fmt.Errorf("spill %s: %w", path, err)
	}
	for _, r := range recs {
		if err := w.add(r.key, r.payload); err != nil {
			w.abort()
			return fmt.Errorf("spill %s: %w", path, err)
		}
	}
	if err := w.finish(); err != nil {
		return fmt.Errorf("spill %s: %w", path, err)
	}
	return nil
}

// spillPath is a fresh run path under dir's spill directory, named with
// prefix.
func spillPath(dir, prefix string) string { return joinPath(dir, SpillDir+"/"+runName(prefix)) }

// writeSortedRun sorts recs and writes them to path as one run.
func writeSortedRun(ctx context.Context, path string, recs []runRecord) error {
	sortRecords(recs)
	return writeRun(ctx, path, recs)
}

// spillRun sorts recs and writes them as one run under dir's spill
// directory, named with prefix, and returns its path.
func spillRun(ctx context.Context, dir, prefix string, recs []runRecord) (string, error) {
	path := spillPath(dir, prefix)
	return path, writeSortedRun(ctx, path, recs)
}

// backgroundRuns runs one write of runs at a time on another goroutine,
// so that a DoFn (on the in-process runners often the only busy
// goroutine of its stage) fills its next buffer while the last one is
// sorted and written: at most one buffer more in memory. The zero value
// is ready; a bundle must wait before it ends, so that nothing reads a
// run before it is whole.
type backgroundRuns struct {
	pending chan error
}

// start waits for the write in flight, then starts fn.
func (b *backgroundRuns) start(fn func() error) error {
	if err := b.wait(); err != nil {
		return err
	}
	done := make(chan error, 1)
	b.pending = done
	go func() { done <- fn() }()
	return nil
}

// spill starts sorting recs and writing them as one run under dir's
// spill directory, named with prefix, and returns its path at once.
func (b *backgroundRuns) spill(ctx context.Context, dir, prefix string, recs []runRecord) (string, error) {
	path := spillPath(dir, prefix)
	return path, b.start(func() error { return writeSortedRun(ctx, path, recs) })
}

// spillParts is spill for several buffers at once, written one after
// the other in the background: the path of each non-empty buffer, "" for
// an empty one.
func (b *backgroundRuns) spillParts(ctx context.Context, dir, prefix string, parts [][]runRecord) ([]string, error) {
	paths := make([]string, len(parts))
	for p, recs := range parts {
		if len(recs) > 0 {
			paths[p] = spillPath(dir, prefix)
		}
	}
	return paths, b.start(func() error {
		for p, recs := range parts {
			if len(recs) > 0 {
				if err := writeSortedRun(ctx, paths[p], recs); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// wait waits for the write in flight, if any, and returns its error.
func (b *backgroundRuns) wait() error {
	if b.pending == nil {
		return nil
	}
	err := <-b.pending
	b.pending = nil
	return err
}

// runReader reads one run record by record.
type runReader struct {
	path  string
	order int // the run's index among those merged: breaks ties
	close func()
	br    *bufio.Reader
	cur   runRecord
	buf   []byte
}

func openRun(ctx context.Context, path string) (*runReader, error) {
	fs, err := filesystem.New(ctx, path)
	if err != nil {
		return nil, err
	}
	rc, err := fs.OpenRead(ctx, path)
	if err != nil {
		fs.Close()
		return nil, fmt.Errorf("open run %s: %w", path, err)
	}
	zr := s2.NewReader(bufio.NewReaderSize(rc, 64<<10), s2.ReaderMaxBlockSize(runBlock))
	return &runReader{path: path, br: bufio.NewReaderSize(zr, 32<<10), close: func() { rc.Close(); fs.Close() }}, nil
}

// next reads the next record into r.cur (valid until the following call)
// and reports false at the end of the run.
func (r *runReader) next() (bool, error) {
	kl, err := binary.ReadUvarint(r.br)
	if err == io.EOF {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("run %s: %w", r.path, err)
	}
	r.buf = slices.Grow(r.buf[:0], int(kl))[:kl]
	if _, err := io.ReadFull(r.br, r.buf); err != nil {
		return false, fmt.Errorf("run %s: truncated record: %w", r.path, err)
	}
	pl, err := binary.ReadUvarint(r.br)
	if err != nil {
		return false, fmt.Errorf("run %s: truncated record: %w", r.path, err)
	}
	r.buf = slices.Grow(r.buf, int(pl))[:int(kl)+int(pl)]
	if _, err := io.ReadFull(r.br, r.buf[kl:]); err != nil {
		return false, fmt.Errorf("run %s: truncated record: %w", r.path, err)
	}
	r.cur = runRecord{key: r.buf[:kl], payload: r.buf[kl:]}
	return true, nil
}

// runHeap orders open runs by their current record (key, then payload,
// as sortRecords does: a merge yields the same order however the records
// were split into runs), then by the runs' order.
type runHeap []*runReader

func (h runHeap) Len() int { return len(h) }
func (h runHeap) Less(i, j int) bool {
	if c := bytes.Compare(h[i].cur.key, h[j].cur.key); c != 0 {
		return c < 0
	}
	if c := bytes.Compare(h[i].cur.payload, h[j].cur.payload); c != 0 {
		return c < 0
	}
	return h[i].order < h[j].order
}
func (h runHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)   { *h = append(*h, x.(*runReader)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// merger yields the records of several runs in ascending key order
// (records of equal keys in the order of the runs), one at a time.
type merger struct {
	h runHeap
	// top is the reader whose record the last next returned; it is
	// advanced on the following call.
	top *runReader
}

// openMerger opens the runs at paths.
func openMerger(ctx context.Context, paths []string) (*merger, error) {
	m := &merger{}
	for i, p := range paths {
		r, err := openRun(ctx, p)
		if err != nil {
			m.close()
			return nil, err
		}
		r.order = i
		ok, err := r.next()
		if err != nil {
			r.close()
			m.close()
			return nil, err
		}
		if !ok {
			r.close()
			continue
		}
		m.h = append(m.h, r)
	}
	heap.Init(&m.h)
	return m, nil
}

// next returns the next record (valid until the following call) and
// false at the end.
func (m *merger) next() (runRecord, bool, error) {
	if m.top != nil {
		ok, err := m.top.next()
		if err != nil {
			return runRecord{}, false, err
		}
		if ok {
			heap.Fix(&m.h, 0)
		} else {
			m.top.close()
			heap.Pop(&m.h)
		}
		m.top = nil
	}
	if len(m.h) == 0 {
		return runRecord{}, false, nil
	}
	m.top = m.h[0]
	return m.top.cur, true, nil
}

func (m *merger) close() {
	for _, r := range m.h {
		r.close()
	}
	m.h = nil
}

// mergeRuns calls fn for every record of the runs at paths in ascending
// key order (records of equal keys in the order of paths). The record is
// valid only during the call.
func mergeRuns(ctx context.Context, paths []string, fn func(runRecord) error) error {
	m, err := openMerger(ctx, paths)
	if err != nil {
		return err
	}
	defer m.close()
	for {
		r, ok, err := m.next()
		if err != nil || !ok {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// runName is a fresh, unique run file name (retried bundles write new
// runs; only the paths that a committed bundle emitted are read).
func runName(prefix string) string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return prefix + "-" + hex.EncodeToString(b[:]) + ".run"
}

// extSorter sorts records by key within a memory budget: records are
// kept in memory until they exceed it, then sorted into a run in a local
// temporary directory; each calls fn in key order, merging the runs.
// A full buffer is sorted and written on another goroutine while the
// next one fills (at most one write in flight: two buffers' memory), so
// that the producer, often the only busy goroutine of its stage, keeps
// going.
type extSorter struct {
	budget int
	recs   []runRecord
	bytes  int
	dir    string
	runs   []string
	bg     backgroundRuns
}

func newExtSorter(budget int) *extSorter { return &extSorter{budget: budget} }

// add copies key and payload into the sorter.
func (s *extSorter) add(ctx context.Context, key, payload []byte) error {
	b := make([]byte, len(key)+len(payload))
	copy(b, key)
	copy(b[len(key):], payload)
	s.recs = append(s.recs, runRecord{key: b[:len(key):len(key)], payload: b[len(key):]})
	s.bytes += len(b) + 64
	if s.bytes > s.budget {
		return s.spill(ctx)
	}
	return nil
}

// sortRecords orders records by key, then payload: a total order on
// their bytes, so a run's order does not depend on the order records
// came in (records equal in both are interchangeable). Most comparisons
// are of the keys' first 8 bytes as integers (big-endian, zero-padded:
// the same order), and the records are permuted in place afterwards.
func sortRecords(recs []runRecord) {
	if len(recs) < 256 {
		slices.SortFunc(recs, compareRecords)
		return
	}
	es := make([]sortEntry, len(recs))
	for i, r := range recs {
		es[i] = sortEntry{keyPrefix(r.key), int32(i)}
	}
	if len(es) < radixMin {
		slices.SortFunc(es, byPrefixThenRecord(recs))
	} else {
		// By prefix with a radix sort, then each run of equal prefixes
		// by the whole records.
		radixSortPrefixes(es)
		for lo := 0; lo < len(es); {
			hi := lo + 1
			for hi < len(es) && es[hi].prefix == es[lo].prefix {
				hi++
			}
			if hi-lo > 1 {
				sortTies(recs, es[lo:hi])
			}
			lo = hi
		}
	}
	// Position k takes record es[k].i: follow each cycle of the
	// permutation once (visited entries are marked -1).
	for k := range es {
		if es[k].i < 0 || int(es[k].i) == k {
			continue
		}
		tmp := recs[k]
		j := k
		for {
			src := int(es[j].i)
			es[j].i = -1
			if src == k {
				recs[j] = tmp
				break
			}
			recs[j] = recs[src]
			j = src
		}
	}
}

// sortTies sorts es, whose records' keys agree on their first 8 bytes,
// by whole records. A large group (the band pairs of one LSH bucket: as
// many as the cluster has members) is sorted by the keys' next 8 bytes
// as integers first, so that most comparisons read no record.
func sortTies(recs []runRecord, es []sortEntry) {
	if len(es) < 16 {
		slices.SortFunc(es, func(a, b sortEntry) int { return compareRecords(recs[a.i], recs[b.i]) })
		return
	}
	for k := range es {
		key := recs[es[k].i].key
		es[k].prefix = keyPrefix(key[min(8, len(key)):])
	}
	slices.SortFunc(es, byPrefixThenRecord(recs))
}

// byPrefixThenRecord orders entries of recs by their prefixes, then by
// their whole records.
func byPrefixThenRecord(recs []runRecord) func(a, b sortEntry) int {
	return func(a, b sortEntry) int {
		if a.prefix != b.prefix {
			return cmp.Compare(a.prefix, b.prefix)
		}
		return compareRecords(recs[a.i], recs[b.i])
	}
}

// sortEntry is a record's key prefix and its index, what sortRecords
// sorts instead of the records.
type sortEntry struct {
	prefix uint64
	i      int32
}

// radixMin is the number of records from which sortRecords sorts the
// prefixes by radix: below it a comparison sort is as fast.
const radixMin = 4096

// radixSortPrefixes sorts es by prefix, least significant byte first,
// eight counting passes from one histogram pass; a byte that is the same
// in every prefix costs no pass. A run of millions of band pairs sorts
// in a fraction of a comparison sort's time (their prefixes are hashes).
func radixSortPrefixes(es []sortEntry) {
	var counts [8][256]int
	for _, e := range es {
		p := e.prefix
		for b := range 8 {
			counts[b][byte(p>>(8*b))]++
		}
	}
	src, dst := es, make([]sortEntry, len(es))
	for b := range 8 {
		c := &counts[b]
		if c[byte(es[0].prefix>>(8*b))] == len(es) {
			continue // every prefix has this byte
		}
		pos := 0
		for v := range c {
			n := c[v]
			c[v] = pos
			pos += n
		}
		shift := uint(8 * b)
		for _, e := range src {
			v := byte(e.prefix >> shift)
			dst[c[v]] = e
			c[v]++
		}
		src, dst = dst, src
	}
	if &src[0] != &es[0] {
		copy(es, src)
	}
}

func compareRecords(a, b runRecord) int {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c
	}
	return bytes.Compare(a.payload, b.payload)
}

// keyPrefix is the first 8 bytes of key as a big-endian integer (short
// keys padded with zeros).
func keyPrefix(key []byte) uint64 {
	if len(key) >= 8 {
		return binary.BigEndian.Uint64(key)
	}
	var b [8]byte
	copy(b[:], key)
	return binary.BigEndian.Uint64(b[:])
}

// spill starts sorting and writing the buffer as a run, after the
// previous write has finished.
func (s *extSorter) spill(ctx context.Context) error {
	if err := s.bg.wait(); err != nil {
		return err
	}
	if s.dir == "" {
		d, err := os.MkdirTemp("", "sieve-sort-")
		if err != nil {
			return fmt.Errorf("external sort: %w", err)
		}
		s.dir = d
	}
	path := s.dir + "/" + runName("sort")
	s.runs = append(s.runs, path)
	recs := s.recs
	s.recs, s.bytes = nil, 0
	return s.bg.start(func() error { return writeSortedRun(ctx, path, recs) })
}

// finishRuns spills what is buffered and waits for the runs to be written.
func (s *extSorter) finishRuns(ctx context.Context) error {
	if len(s.recs) > 0 {
		if err := s.spill(ctx); err != nil {
			return err
		}
	}
	return s.bg.wait()
}

// each calls fn for every record in key order, then releases the sorter.
func (s *extSorter) each(ctx context.Context, fn func(runRecord) error) error {
	defer s.release()
	if len(s.runs) == 0 {
		sortRecords(s.recs)
		for _, r := range s.recs {
			if err := fn(r); err != nil {
				return err
			}
		}
		return nil
	}
	if err := s.finishRuns(ctx); err != nil {
		return err
	}
	return mergeRuns(ctx, s.runs, fn)
}

// sortedIter pulls the records of an extSorter in key order.
type sortedIter struct {
	recs []runRecord
	i    int
	m    *merger
}

// iter returns a pull iterator over the sorted records; call close (which
// releases the sorter) when done.
func (s *extSorter) iter(ctx context.Context) (*sortedIter, error) {
	if len(s.runs) == 0 {
		sortRecords(s.recs)
		return &sortedIter{recs: s.recs}, nil
	}
	if err := s.finishRuns(ctx); err != nil {
		return nil, err
	}
	m, err := openMerger(ctx, s.runs)
	if err != nil {
		return nil, err
	}
	return &sortedIter{m: m}, nil
}

func (it *sortedIter) next() (runRecord, bool, error) {
	if it.m != nil {
		return it.m.next()
	}
	if it.i >= len(it.recs) {
		return runRecord{}, false, nil
	}
	it.i++
	return it.recs[it.i-1], true, nil
}

func (it *sortedIter) close() {
	if it.m != nil {
		it.m.close()
	}
	it.recs = nil
}

func (s *extSorter) release() {
	_ = s.bg.wait() // the caller has its error, or none to report
	s.recs = nil
	if s.dir != "" {
		_ = os.RemoveAll(s.dir)
		s.dir = ""
	}
}
