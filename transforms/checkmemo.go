package transforms

import (
	"context"
	"encoding/json"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"github.com/sieve-data/sieve/datasets"
)

// checkSteps are the later stages' steps that a dedup stage runs on a
// copy of each sample so that a group's survivor is one that passes them
// (passPrefix), with an id made from their specs.
type checkSteps struct {
	steps []Step
	id    uint64
}

// checksOf builds (once per DoFn instance, through r) the steps of specs
// and their id.
func checksOf(r *stepRunner, specs []StepSpec) (checkSteps, error) {
	steps, err := r.get(specs)
	if err != nil || len(steps) == 0 {
		return checkSteps{}, err
	}
	b, err := json.Marshal(specs)
	if err != nil {
		return checkSteps{}, err
	}
	return checkSteps{steps: steps, id: maphash.Bytes(memoSeeds[0], b)}, nil
}

// passPrefix is "0" when s passes the checks (run on a copy), else "1":
// prefixed to a member's reference or node, it makes members that pass
// sort first, so the survivor is one of them whenever there is one.
//
// The verdict is a function of the checks and the sample, and the same
// sample meets the same checks in every dedup stage of a recipe (exact,
// then fuzzy, on the samples the steps before them left): the process
// keeps the verdicts in checkMemo, so each sample pays for the checks
// (most of a dedup stage's CPU with the default filter) once.
func passPrefix(ctx context.Context, c checkSteps, s *datasets.Sample) string {
	if len(c.steps) == 0 {
		return "0"
	}
	h := memoKey(c.id, s)
	if pass, ok := verdicts.get(h); ok {
		return passString(pass)
	}
	cp := *s
	cp.Messages = append([]datasets.Message(nil), s.Messages...)
	pass := runSteps(ctx, c.steps, &cp) == nil
	verdicts.put(h, pass)
	return passString(pass)
}

func passString(pass bool) string {
	if pass {
		return "0"
	}
	return "1"
}

// verdicts is the process's memo of check verdicts.
var verdicts checkMemo

// checkMemoSlots is the memo's size: 2^22 slots of 8 bytes (32 MiB),
// allocated on first use. A full memo only overwrites older verdicts:
// memory stays fixed whatever the number of samples, and a miss costs a
// recomputation, never a different answer.
const checkMemoSlots = 1 << 22

// checkMemo is a direct-mapped table of verdicts keyed by a 128-bit hash
// of (checks id, sample encoding): 22 bits pick the slot, the slot holds
// 62 more bits of the hash, a "set" bit and the verdict, in one atomic
// word (workers read and write it without locks and never see half an
// entry). A false hit needs 84 equal hash bits.
type checkMemo struct {
	once  sync.Once
	slots []atomic.Uint64
	hits  atomic.Int64
	calls atomic.Int64
}

type memoHash [2]uint64

var memoSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

var memoBufs = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// memoKey hashes the checks id and the sample's binary encoding (every
// field a check may read: messages, source, license, scores).
func memoKey(id uint64, s *datasets.Sample) memoHash {
	bp := memoBufs.Get().(*[]byte)
	b := s.AppendBinary((*bp)[:0])
	var h0, h1 maphash.Hash
	h0.SetSeed(memoSeeds[0])
	h1.SetSeed(memoSeeds[1])
	var idb [8]byte
	for i := range idb {
		idb[i] = byte(id >> (8 * i))
	}
	h0.Write(idb[:])
	h0.Write(b)
	h1.Write(idb[:])
	h1.Write(b)
	*bp = b
	memoBufs.Put(bp)
	return memoHash{h0.Sum64(), h1.Sum64()}
}

func (m *checkMemo) table() []atomic.Uint64 {
	m.once.Do(func() { m.slots = make([]atomic.Uint64, checkMemoSlots) })
	return m.slots
}

func memoEntry(h memoHash, pass bool) (slot uint64, entry uint64) {
	entry = h[1]&^3 | 2
	if pass {
		entry |= 1
	}
	return h[0] & (checkMemoSlots - 1), entry
}

func (m *checkMemo) get(h memoHash) (pass, ok bool) {
	m.calls.Add(1)
	slot, want := memoEntry(h, false)
	v := m.table()[slot].Load()
	if v&^1 != want {
		return false, false
	}
	m.hits.Add(1)
	return v&1 == 1, true
}

func (m *checkMemo) put(h memoHash, pass bool) {
	slot, v := memoEntry(h, pass)
	m.table()[slot].Store(v)
}

// CheckMemoStats are this process's check-verdict lookups and hits (on
// a distributed runner, the driver's: zero).
func CheckMemoStats() (lookups, hits int64) {
	return verdicts.calls.Load(), verdicts.hits.Load()
}
