package train

import (
	"context"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// Splits are the conversations of a dataset version, by split.
type Splits struct {
	Train, Test [][]datasets.Message
}

// ReadSplits reads the train and test splits of a version (other splits
// are ignored), in manifest order.
func ReadSplits(ctx context.Context, v *datasets.Version) (Splits, error) {
	var s Splits
	err := v.ReadSamples(ctx, func(split string, smp *datasets.Sample) error {
		switch split {
		case "train":
			s.Train = append(s.Train, smp.Messages)
		case "test":
			s.Test = append(s.Test, smp.Messages)
		}
		return nil
	})
	if err != nil {
		return Splits{}, fmt.Errorf("train: reading %s: %w", v.Ref, err)
	}
	return s, nil
}

// DataStats counts what tokenization did to one split.
type DataStats struct {
	Samples   int `json:"samples"`   // conversations read
	Used      int `json:"used"`      // conversations trained on
	Truncated int `json:"truncated"` // longer than seq_len: cut to seq_len (and used, when a target is left)
	// Skipped had no assistant token to learn: no assistant message, or
	// every assistant token beyond seq_len.
	Skipped    int   `json:"skipped"`
	Tokens     int64 `json:"tokens"`      // tokens of the used conversations, after truncation
	LossTokens int64 `json:"loss_tokens"` // tokens the loss counts (assistant targets)
	Rows       int   `json:"rows"`        // rows of seq_len tokens after packing (or padding)
}

// Encode tokenizes conversations with the tokenizer's chat template,
// keeping the assistant-only loss mask, and cuts each to at most seqLen
// tokens. A conversation with no target left to learn is skipped. The
// result is in the order of convs (minus the skipped ones); encoding runs
// on GOMAXPROCS goroutines.
func Encode(tok *tokenizer.Tokenizer, convs [][]datasets.Message, seqLen int) ([]model.Sample, DataStats) {
	enc := make([]model.Sample, len(convs))
	truncated := make([]bool, len(convs))
	workers := min(runtime.GOMAXPROCS(0), max(1, len(convs)/64))
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*len(convs)/workers, (w+1)*len(convs)/workers
		wg.Add(1)
		go func() {
			defer wg.Done()
			chat := tok.Chat()
			for i := lo; i < hi; i++ {
				ids, mask := chat.Encode(convs[i])
				if len(ids) > seqLen {
					ids, mask, truncated[i] = ids[:seqLen:seqLen], mask[:seqLen:seqLen], true
				}
				enc[i] = model.Sample{IDs: ids, LossMask: mask}
			}
		}()
	}
	wg.Wait()
	st := DataStats{Samples: len(convs)}
	out := enc[:0]
	for i, s := range enc {
		if truncated[i] {
			st.Truncated++
		}
		n := lossTokens(s)
		if n == 0 {
			st.Skipped++
			continue
		}
		st.Used++
		st.Tokens += int64(len(s.IDs))
		st.LossTokens += int64(n)
		out = append(out, s)
	}
	return out, st
}

// lossTokens is the number of tokens of s the loss counts: token i
// predicts token i+1, which counts when LossMask[i+1] is set.
func lossTokens(s model.Sample) int {
	n := 0
	for i := 1; i < len(s.IDs); i++ {
		if s.LossMask == nil || s.LossMask[i] {
			n++
		}
	}
	return n
}

// Pack lays samples (each at most seqLen tokens) into rows of seqLen
// tokens, best fit decreasing: longest sample first (ties by index),
// each into the open row with the least room that holds it, else into a
// new row. It returns the rows as lists of sample indexes, in the order
// rows were opened. The result depends only on the sample lengths.
func Pack(samples []model.Sample, seqLen int) [][]int {
	order := make([]int, len(samples))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(samples[b].IDs) - len(samples[a].IDs) })
	// byRoom[r] holds the rows with r tokens of room; nonEmpty is a
	// bitset of the r with rows, for the smallest room ≥ L in O(seqLen/64).
	byRoom := make([][]int, seqLen+1)
	nonEmpty := make([]uint64, seqLen/64+1)
	var rows [][]int
	for _, i := range order {
		L := len(samples[i].IDs)
		r := findRoom(nonEmpty, L)
		var row int
		if r < 0 {
			row, r = len(rows), seqLen
			rows = append(rows, nil)
		} else {
			b := byRoom[r]
			row = b[len(b)-1]
			byRoom[r] = b[:len(b)-1]
			if len(byRoom[r]) == 0 {
				nonEmpty[r/64] &^= 1 << (r % 64)
			}
		}
		rows[row] = append(rows[row], i)
		if left := r - L; left > 0 {
			byRoom[left] = append(byRoom[left], row)
			nonEmpty[left/64] |= 1 << (left % 64)
		}
	}
	return rows
}

// findRoom returns the smallest set bit ≥ from, or -1.
func findRoom(set []uint64, from int) int {
	w := from / 64
	if w >= len(set) {
		return -1
	}
	if b := set[w] >> (from % 64); b != 0 {
		return from + bits.TrailingZeros64(b)
	}
	for w++; w < len(set); w++ {
		if set[w] != 0 {
			return w*64 + bits.TrailingZeros64(set[w])
		}
	}
	return -1
}

// OnePerRow puts each sample in a row of its own (padding instead of
// packing).
func OnePerRow(samples []model.Sample) [][]int {
	rows := make([][]int, len(samples))
	for i := range rows {
		rows[i] = []int{i}
	}
	return rows
}

// epochOrder is the order in which epoch e visits n rows: a permutation
// that depends only on the seed and e.
func epochOrder(seed uint64, epoch, n int) []int {
	return rand.New(rand.NewPCG(seed, uint64(epoch)^0x9e3779b97f4a7c15)).Perm(n)
}

// batcher builds model batches from rows of samples in one reused
// buffer, as wide as the longest row of the batch.
type batcher struct {
	samples []model.Sample
	rows    [][]int
	buf     *model.Batch // B×seqLen storage
	tmp     []model.Sample
}

func newBatcher(samples []model.Sample, rows [][]int, b, seqLen int) *batcher {
	return &batcher{samples: samples, rows: rows, buf: model.NewBatch(b, seqLen)}
}

// rowLen is the number of tokens of row r.
func (bt *batcher) rowLen(r int) int {
	n := 0
	for _, i := range bt.rows[r] {
		n += len(bt.samples[i].IDs)
	}
	return n
}

// rowLoss is the number of tokens the loss counts in row r.
func (bt *batcher) rowLoss(r int) int {
	n := 0
	for _, i := range bt.rows[r] {
		n += lossTokens(bt.samples[i])
	}
	return n
}

// batch returns the batch of the given rows (at most B), T the longest
// of them, and its number of tokens (padding excluded).
func (bt *batcher) batch(rows []int) (*model.Batch, int, error) {
	T, tokens := 1, 0
	for _, r := range rows {
		n := bt.rowLen(r)
		T = max(T, n)
		tokens += n
	}
	n := len(rows) * T
	x := &model.Batch{B: len(rows), T: T, IDs: bt.buf.IDs[:n], Pos: bt.buf.Pos[:n], Seg: bt.buf.Seg[:n],
		Targets: bt.buf.Targets[:n], Mask: bt.buf.Mask[:n]}
	for k, r := range rows {
		bt.tmp = bt.tmp[:0]
		for _, i := range bt.rows[r] {
			bt.tmp = append(bt.tmp, bt.samples[i])
		}
		if err := x.SetRow(k, bt.tmp...); err != nil {
			return nil, 0, err
		}
	}
	return x, tokens, nil
}
