package dedup

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
)

// IndexParams are what an Index needs to be queried consistently: the
// TextConfig that made its signatures (so that queries are made the same
// way) and the banding.
type IndexParams struct {
	Text  TextConfig `json:"text"`
	Bands int        `json:"bands"`
	Rows  int        `json:"rows"`
}

// Index is a MinHash-LSH index for incremental and cross-dataset dedup:
// signatures of a reference set (an earlier dataset version, a benchmark
// to keep out of training data) under their real ids, bucketed by the
// same BandKeys the batch pipeline shuffles on, so a query finds exactly
// the candidates a batch run over both sets would have paired it with.
//
// It is sieve's own band-key map rather than ekzhu/minhash-lsh's
// MinhashLSH, which sieve uses for signatures only (EkzhuHasher) because
// its index does not fit: it picks its own bands and rows from the
// threshold (equal weights, no explicit setting), so its candidates would
// not match the batch pipeline's; added keys are invisible until Index()
// re-sorts every table, so adding to a built index costs O(n log n); it
// truncates signature values to 32 bits by default; it cannot be saved or
// loaded; it keys entries by interface{} values; and its Add is not safe
// alongside Query. This Index takes explicit bands and rows, is
// queryable after every Add, stores full signatures (so candidates can be
// verified by estimated Jaccard and the file can be re-banded), and saves
// to and loads from a versioned binary file.
//
// All methods are safe for concurrent use: Add takes a write lock, the
// queries a read lock, so any number of goroutines (or Beam DoFn
// instances sharing a loaded index) may query at once.
//
// Memory: 8·NumPerm bytes of signature, one bucket-map entry per band
// (most buckets hold one id) and the id per sample: about 3.2 KB per
// sample at 128 permutations, 21 bands and 32-character ids (measured),
// plus 4 bytes per distinct shingle for entries added with their set.
// The file holds 8·NumPerm bytes and the id per sample (and the sets).
type Index struct {
	mu      sync.RWMutex
	p       IndexParams
	ids     []string
	byID    map[string]int32
	sigs    []uint64   // len(ids) × NumPerm, row-major
	sets    [][]uint32 // CompactSet per entry, nil when not given
	buckets map[uint64][]int32
}

// NewIndex returns an empty index. It fails when the banding does not fit
// the signature length or the text configuration is invalid.
func NewIndex(p IndexParams) (*Index, error) {
	if err := p.Text.Validate(); err != nil {
		return nil, err
	}
	if p.Bands < 1 || p.Rows < 1 || p.Bands*p.Rows > p.Text.Perms() || p.Bands > MaxBands {
		return nil, fmt.Errorf("dedup: index: %d bands × %d rows do not fit %d permutations", p.Bands, p.Rows, p.Text.Perms())
	}
	return &Index{p: p, byID: map[string]int32{}, buckets: map[uint64][]int32{}}, nil
}

// Params returns the index's parameters.
func (x *Index) Params() IndexParams { return x.p }

// Len returns the number of signatures in the index.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.ids)
}

// Add inserts a signature under id. It fails if the signature has the
// wrong length or id is already present.
func (x *Index) Add(id string, sig []uint64) error { return x.add(id, sig, nil) }

// AddWithSet is Add that also keeps the text's CompactSet, so that
// NearExact can verify this entry by exact Jaccard. It costs 4 bytes per
// distinct shingle, in memory and on file.
func (x *Index) AddWithSet(id string, sig []uint64, set []uint32) error {
	if set == nil {
		set = []uint32{}
	}
	return x.add(id, sig, slices.Clone(set))
}

func (x *Index) add(id string, sig []uint64, set []uint32) error {
	if len(sig) != x.p.Text.Perms() {
		return fmt.Errorf("dedup: index: signature of %d values, want %d", len(sig), x.p.Text.Perms())
	}
	keys := BandKeys(sig, x.p.Bands, x.p.Rows)
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.byID[id]; ok {
		return fmt.Errorf("dedup: index: id %q added twice", id)
	}
	if len(x.ids) == 1<<31-1 {
		return errors.New("dedup: index full")
	}
	n := int32(len(x.ids))
	x.ids = append(x.ids, id)
	x.byID[id] = n
	x.sigs = append(x.sigs, sig...)
	x.sets = append(x.sets, set)
	for _, k := range keys {
		x.buckets[k] = append(x.buckets[k], n)
	}
	return nil
}

// Query returns the ids of the indexed signatures that share at least
// one band bucket with sig, sorted and without repetitions; nil when
// there are none. It panics if sig has the wrong length.
func (x *Index) Query(sig []uint64) []string {
	keys := BandKeys(x.checkLen(sig), x.p.Bands, x.p.Rows)
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []string
	for _, n := range x.candidates(keys) {
		out = append(out, x.ids[n])
	}
	slices.Sort(out)
	return out
}

// Match is an indexed id with its estimated Jaccard similarity to a
// query.
type Match struct {
	ID      string  `json:"id"`
	Jaccard float64 `json:"jaccard"`
}

// Near returns the candidates of Query whose estimated Jaccard similarity
// to sig is at least threshold, most similar first (ties by id).
func (x *Index) Near(sig []uint64, threshold float64) []Match {
	return x.NearExact(sig, nil, threshold)
}

// NearExact is Near verifying by exact Jaccard: candidates stored with a
// set (AddWithSet) are compared with set by CompactJaccard, the others
// (and all of them when set is nil) by the estimate.
func (x *Index) NearExact(sig []uint64, set []uint32, threshold float64) []Match {
	keys := BandKeys(x.checkLen(sig), x.p.Bands, x.p.Rows)
	k := len(sig)
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []Match
	for _, n := range x.candidates(keys) {
		var j float64
		if set != nil && x.sets[n] != nil {
			j = CompactJaccard(set, x.sets[n])
		} else {
			j = EstimateJaccard(sig, x.sigs[int(n)*k:int(n+1)*k])
		}
		if j >= threshold {
			out = append(out, Match{x.ids[n], j})
		}
	}
	slices.SortFunc(out, func(a, b Match) int {
		switch {
		case a.Jaccard > b.Jaccard:
			return -1
		case a.Jaccard < b.Jaccard:
			return 1
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Signature returns a copy of the signature stored under id.
func (x *Index) Signature(id string) ([]uint64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	n, ok := x.byID[id]
	if !ok {
		return nil, false
	}
	k := x.p.Text.Perms()
	return slices.Clone(x.sigs[int(n)*k : int(n+1)*k]), true
}

func (x *Index) checkLen(sig []uint64) []uint64 {
	if len(sig) != x.p.Text.Perms() {
		panic(fmt.Sprintf("dedup: index: query signature of %d values, want %d", len(sig), x.p.Text.Perms()))
	}
	return sig
}

// candidates returns the distinct entries sharing a bucket with keys,
// ascending. The caller holds the read lock.
func (x *Index) candidates(keys []uint64) []int32 {
	var c []int32
	for _, k := range keys {
		c = append(c, x.buckets[k]...)
	}
	slices.Sort(c)
	return slices.Compact(c)
}

// The file format, version 1, all integers little-endian:
//
//	magic    "SIEVEMHX" (8 bytes)
//	version  uint32 = 1
//	plen     uint32, then plen bytes of IndexParams as JSON
//	count    uint64, the number of entries
//	count × { idlen uvarint, id bytes, NumPerm × uint64 signature,
//	          setlen uvarint (0: no set, else 1 + the set's length),
//	          set values uint32 }
//
// Buckets are rebuilt on load from the signatures.
const (
	indexMagic   = "SIEVEMHX"
	indexVersion = 1
)

// Save writes the index (parameters, ids and signatures) to w.
func (x *Index) Save(w io.Writer) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	bw := bufio.NewWriterSize(w, 1<<16)
	p, err := json.Marshal(x.p)
	if err != nil {
		return err
	}
	var hdr []byte
	hdr = append(hdr, indexMagic...)
	hdr = binary.LittleEndian.AppendUint32(hdr, indexVersion)
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(p)))
	hdr = append(hdr, p...)
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(len(x.ids)))
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("dedup: save index: %w", err)
	}
	k := x.p.Text.Perms()
	buf := make([]byte, 0, binary.MaxVarintLen64+64+8*k)
	for i, id := range x.ids {
		buf = binary.AppendUvarint(buf[:0], uint64(len(id)))
		buf = append(buf, id...)
		for _, v := range x.sigs[i*k : (i+1)*k] {
			buf = binary.LittleEndian.AppendUint64(buf, v)
		}
		if set := x.sets[i]; set == nil {
			buf = binary.AppendUvarint(buf, 0)
		} else {
			buf = binary.AppendUvarint(buf, uint64(len(set))+1)
			for _, v := range set {
				buf = binary.LittleEndian.AppendUint32(buf, v)
			}
		}
		if _, err := bw.Write(buf); err != nil {
			return fmt.Errorf("dedup: save index: %w", err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dedup: save index: %w", err)
	}
	return nil
}

// LoadIndex reads an index that Save wrote. Buckets are rebuilt from the
// signatures, so loading takes about as long as adding them again.
func LoadIndex(r io.Reader) (*Index, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	fail := func(err error) (*Index, error) {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("dedup: load index: %w", err)
	}
	var hdr [16]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		return fail(err)
	}
	if string(hdr[:8]) != indexMagic {
		return fail(errors.New("not a sieve MinHash index"))
	}
	if v := binary.LittleEndian.Uint32(hdr[8:]); v != indexVersion {
		return fail(fmt.Errorf("unsupported version %d", v))
	}
	plen := binary.LittleEndian.Uint32(hdr[12:])
	if plen > 1<<20 {
		return fail(fmt.Errorf("parameter block of %d bytes", plen))
	}
	pb := make([]byte, plen)
	if _, err := io.ReadFull(br, pb); err != nil {
		return fail(err)
	}
	var p IndexParams
	if err := json.Unmarshal(pb, &p); err != nil {
		return fail(err)
	}
	x, err := NewIndex(p)
	if err != nil {
		return fail(err)
	}
	var cnt [8]byte
	if _, err := io.ReadFull(br, cnt[:]); err != nil {
		return fail(err)
	}
	count := binary.LittleEndian.Uint64(cnt[:])
	k := p.Text.Perms()
	raw := make([]byte, 8*k)
	sig := make([]uint64, k)
	for i := uint64(0); i < count; i++ {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return fail(err)
		}
		if n > 1<<20 {
			return fail(fmt.Errorf("entry %d: id of %d bytes", i, n))
		}
		id := make([]byte, n)
		if _, err := io.ReadFull(br, id); err != nil {
			return fail(err)
		}
		if _, err := io.ReadFull(br, raw); err != nil {
			return fail(err)
		}
		for j := range sig {
			sig[j] = binary.LittleEndian.Uint64(raw[8*j:])
		}
		sn, err := binary.ReadUvarint(br)
		if err != nil {
			return fail(err)
		}
		var set []uint32
		if sn > 0 {
			if sn > 1<<24 {
				return fail(fmt.Errorf("entry %d: set of %d values", i, sn-1))
			}
			sb := make([]byte, 4*(sn-1))
			if _, err := io.ReadFull(br, sb); err != nil {
				return fail(err)
			}
			set = make([]uint32, sn-1)
			for j := range set {
				set[j] = binary.LittleEndian.Uint32(sb[4*j:])
			}
		}
		if err := x.add(string(id), sig, set); err != nil {
			return fail(err)
		}
	}
	return x, nil
}
