package model

import "fmt"

// Batch is B rows of T tokens, stored row-major (token n = b·T + t).
//
// A row holds one sample, or several packed one after another, or one
// sample and padding. Seg gives each token a segment id: a token attends
// to itself and to the earlier tokens of its segment, that is of its run
// of equal consecutive Seg values in the row, and to nothing else; so
// packed samples never see each other. Pos gives each token its position
// id for the rotary embeddings; it restarts at 0 with each sample.
//
// The loss counts token n when Mask[n] is true and Targets[n] ≥ 0; it is
// the mean of −log softmax(logits[n])[Targets[n]] over counted tokens.
// Targets are already shifted: Targets[n] is the id that should follow
// token n (the Hugging Face labels shifted by one).
type Batch struct {
	B, T    int
	IDs     []int  // [B·T] token ids in [0, V)
	Pos     []int  // [B·T] position ids ≥ 0; nil means the index of the token in its segment
	Seg     []int  // [B·T] segment ids; nil means one segment per row (plain causal mask)
	Targets []int  // [B·T] next-token ids; < 0 means no target (as HF's -100)
	Mask    []bool // [B·T] loss mask; nil means every token with a target counts
}

// Sample is one tokenized sequence with its loss mask as the tokenizer's
// chat template returns them: LossMask[i] is true when token i is one the
// model should learn to produce (assistant tokens). LossMask nil means
// every token.
type Sample struct {
	IDs      []int
	LossMask []bool
}

// PadSegment is the segment id SetRow gives padding.
const PadSegment = -1

// NewBatch returns a batch of b rows of t tokens, all padding (id 0,
// segment PadSegment, no target).
func NewBatch(b, t int) *Batch {
	n := b * t
	x := &Batch{B: b, T: t, IDs: make([]int, n), Pos: make([]int, n), Seg: make([]int, n),
		Targets: make([]int, n), Mask: make([]bool, n)}
	for r := 0; r < b; r++ {
		x.SetRow(r)
	}
	return x
}

// SetRow lays samples one after another in row r, with consecutive
// segment ids 0, 1, ..., positions restarting at 0 for each, and pads the
// rest of the row (id padID=0, segment PadSegment, no target). Within a
// sample, token i predicts token i+1, and counts when LossMask[i+1] is
// true; the last token of each sample has no target. It returns an error
// when the samples do not fit in T tokens.
func (x *Batch) SetRow(r int, samples ...Sample) error {
	if r < 0 || r >= x.B {
		return fmt.Errorf("model: row %d out of range [0,%d)", r, x.B)
	}
	total := 0
	for _, s := range samples {
		if s.LossMask != nil && len(s.LossMask) != len(s.IDs) {
			return fmt.Errorf("model: sample has %d ids and %d mask values", len(s.IDs), len(s.LossMask))
		}
		total += len(s.IDs)
	}
	if total > x.T {
		return fmt.Errorf("model: %d tokens do not fit a row of %d", total, x.T)
	}
	n := r * x.T
	for si, s := range samples {
		for i, id := range s.IDs {
			x.IDs[n] = id
			x.Pos[n] = i
			x.Seg[n] = si
			x.Targets[n] = -1
			x.Mask[n] = false
			if i+1 < len(s.IDs) {
				x.Targets[n] = s.IDs[i+1]
				x.Mask[n] = s.LossMask == nil || s.LossMask[i+1]
			}
			n++
		}
	}
	for ; n < (r+1)*x.T; n++ {
		x.IDs[n], x.Pos[n], x.Seg[n], x.Targets[n], x.Mask[n] = 0, 0, PadSegment, -1, false
	}
	return nil
}

// counted reports whether token n contributes to the loss.
func (x *Batch) counted(n int) bool {
	return x.Targets[n] >= 0 && (x.Mask == nil || x.Mask[n])
}

// check validates x against c and the workspace limits.
func (x *Batch) check(c Config, maxB, maxT int) error {
	n := x.B * x.T
	switch {
	case x.B <= 0 || x.T <= 0:
		return fmt.Errorf("model: batch %d×%d is empty", x.B, x.T)
	case x.B*x.T > maxB*maxT || x.T > maxT:
		return fmt.Errorf("model: batch %d×%d does not fit the workspace %d×%d", x.B, x.T, maxB, maxT)
	case len(x.IDs) != n:
		return fmt.Errorf("model: batch has %d ids, want %d", len(x.IDs), n)
	case x.Pos != nil && len(x.Pos) != n:
		return fmt.Errorf("model: batch has %d positions, want %d", len(x.Pos), n)
	case x.Seg != nil && len(x.Seg) != n:
		return fmt.Errorf("model: batch has %d segment ids, want %d", len(x.Seg), n)
	case len(x.Targets) != n:
		return fmt.Errorf("model: batch has %d targets, want %d", len(x.Targets), n)
	case x.Mask != nil && len(x.Mask) != n:
		return fmt.Errorf("model: batch has %d mask values, want %d", len(x.Mask), n)
	}
	for i, id := range x.IDs {
		if id < 0 || id >= c.VocabSize {
			return fmt.Errorf("model: token %d has id %d outside [0,%d)", i, id, c.VocabSize)
		}
		if x.Targets[i] >= c.VocabSize {
			return fmt.Errorf("model: token %d has target %d outside [0,%d)", i, x.Targets[i], c.VocabSize)
		}
		if x.Pos != nil && x.Pos[i] < 0 {
			return fmt.Errorf("model: token %d has negative position %d", i, x.Pos[i])
		}
	}
	return nil
}
