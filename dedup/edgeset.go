package dedup

// edgeSet is Candidates' memory of the edges it emitted: an open-
// addressing hash table (linear probing) of 128-bit edge hashes, kept at
// most half full. Four keys share a 64-byte cache line, so a lookup
// costs about one memory access where a Go map of millions of keys cost
// several. It starts at edgeSetMinSlots slots and doubles, re-inserting
// its keys, so nothing is forgotten until it holds edgeSetMaxSlots/2
// keys (4M edges, as many as the map it replaces held); then it empties
// and starts over (the map did the same), so its memory is bounded
// (128 MiB). A forgotten edge met again is emitted again: more
// verification, the same clusters. A repeat is dropped only when all 128
// bits match.
type edgeSet struct {
	keys []edgeKey // the zero key marks an empty slot
	n    int       // keys held
	// limit, when set (a power of two, at least edgeSetMinSlots), is
	// the slots it grows to instead of edgeSetMaxSlots.
	limit int
}

type edgeKey [2]uint64

const (
	edgeSetMinSlots = 1 << 12
	edgeSetMaxSlots = 1 << 23
)

// add inserts k and reports whether it was absent.
func (s *edgeSet) add(k edgeKey) bool {
	if k == (edgeKey{}) {
		k[1] = 1
	}
	if s.keys == nil {
		s.keys = make([]edgeKey, edgeSetMinSlots)
	}
	mask := uint64(len(s.keys) - 1)
	for i := k[0] & mask; ; i = (i + 1) & mask {
		switch s.keys[i] {
		case k:
			return false
		case edgeKey{}:
			s.keys[i] = k
			s.n++
			if 2*s.n > len(s.keys) {
				if len(s.keys) < s.maxSlots() {
					s.grow()
				} else {
					clear(s.keys)
					s.n = 0
				}
			}
			return true
		}
	}
}

func (s *edgeSet) maxSlots() int {
	if s.limit > 0 {
		return s.limit
	}
	return edgeSetMaxSlots
}

// grow doubles the table and re-inserts its keys.
func (s *edgeSet) grow() {
	old := s.keys
	s.keys = make([]edgeKey, 2*len(old))
	mask := uint64(len(s.keys) - 1)
	for _, k := range old {
		if k == (edgeKey{}) {
			continue
		}
		i := k[0] & mask
		for s.keys[i] != (edgeKey{}) {
			i = (i + 1) & mask
		}
		s.keys[i] = k
	}
}
