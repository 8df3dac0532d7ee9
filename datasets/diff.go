package datasets

import (
	"context"
	"crypto/sha256"
	"sort"
)

// DiffResult compares two versions sample by sample, by id.
type DiffResult struct {
	A, B Ref
	// Added are ids only in B, Removed only in A, Changed in both but
	// with other columns different (source, license, scores, split, …).
	Added, Removed, Changed []string
	Same                    int
}

// Diff compares versions a and b. Samples are matched by id; a sample
// whose id is in both but whose other fields (or split) differ counts as
// changed.
func Diff(ctx context.Context, a, b *Version) (*DiffResult, error) {
	ha, err := rowHashes(ctx, a)
	if err != nil {
		return nil, err
	}
	hb, err := rowHashes(ctx, b)
	if err != nil {
		return nil, err
	}
	d := &DiffResult{A: a.Ref, B: b.Ref}
	for id, h := range ha {
		hb2, ok := hb[id]
		switch {
		case !ok:
			d.Removed = append(d.Removed, id)
		case hb2 != h:
			d.Changed = append(d.Changed, id)
		default:
			d.Same++
		}
	}
	for id := range hb {
		if _, ok := ha[id]; !ok {
			d.Added = append(d.Added, id)
		}
	}
	sort.Strings(d.Added)
	sort.Strings(d.Removed)
	sort.Strings(d.Changed)
	return d, nil
}

// rowHashes maps each id to a hash of its rows (all of them, in order,
// with their split), so duplicates of an id are compared as a group.
func rowHashes(ctx context.Context, v *Version) (map[string][32]byte, error) {
	out := map[string][32]byte{}
	var buf []byte
	err := v.ReadSamples(ctx, func(split string, s *Sample) error {
		prev, seen := out[s.ID]
		buf = append(buf[:0], split...)
		buf = s.AppendBinary(buf)
		if seen {
			buf = append(buf, prev[:]...)
		}
		out[s.ID] = sha256.Sum256(buf)
		return nil
	})
	return out, err
}
