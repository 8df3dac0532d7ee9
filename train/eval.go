package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train/model"
)

// EvalOptions say what Evaluate measures: the checkpoints (directories
// in the Hugging Face layout, or LoRA adapter directories) on the test
// split of the version Data in Store, in rows of SeqLen tokens (0: the
// seq_len of the checkpoint's trainer_state.json, else 1024) packed as
// training packs them, BatchSize rows at a time (0: the checkpoint's,
// else 8).
type EvalOptions struct {
	Store       datasets.Store
	Data        string
	Checkpoints []string
	SeqLen      int
	BatchSize   int
	// Split to evaluate on (default "test").
	Split string
}

// EvalResult is one checkpoint's loss on the split.
type EvalResult struct {
	Checkpoint string    `json:"checkpoint"`
	Data       string    `json:"data"`
	Split      string    `json:"split"`
	SeqLen     int       `json:"seq_len"`
	Loss       float64   `json:"loss"`       // mean per counted (assistant) token, nats
	Perplexity float64   `json:"perplexity"` // exp(loss)
	Stats      DataStats `json:"data_stats"`
	Params     int       `json:"params"`
}

// Evaluate computes each checkpoint's mean loss per counted token (the
// assistant tokens, as training counts them) and perplexity on a split
// of a version. With the seq_len and batch size a run trained with, a
// checkpoint's loss is the eval_loss its run logged, to the bit.
func Evaluate(ctx context.Context, opt EvalOptions) ([]EvalResult, error) {
	if len(opt.Checkpoints) == 0 {
		return nil, fmt.Errorf("train: eval: no checkpoint")
	}
	split := opt.Split
	if split == "" {
		split = "test"
	}
	ref, err := datasets.ParseRef(opt.Data)
	if err != nil {
		return nil, fmt.Errorf("train: eval: data: %w", err)
	}
	v, err := opt.Store.OpenVersion(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("train: eval: %w", err)
	}
	var convs [][]datasets.Message
	err = v.ReadSamples(ctx, func(s string, smp *datasets.Sample) error {
		if s == split {
			convs = append(convs, smp.Messages)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("train: eval: reading %s: %w", v.Ref, err)
	}
	if len(convs) == 0 {
		return nil, fmt.Errorf("train: eval: %s has no %s split", v.Ref, split)
	}
	var out []EvalResult
	for _, dir := range opt.Checkpoints {
		seqLen, batch := opt.SeqLen, opt.BatchSize
		if data, err := os.ReadFile(filepath.Join(dir, TrainerStateFile)); err == nil {
			var st trainerState
			if json.Unmarshal(data, &st) == nil {
				seqLen, batch = cmp0(seqLen, st.Config.SeqLen), cmp0(batch, st.Config.BatchSize)
			}
		}
		seqLen, batch = cmp0(seqLen, 1024), cmp0(batch, 8)
		g, err := LoadGenerator(dir)
		if err != nil {
			return nil, fmt.Errorf("train: eval: %w", err)
		}
		samples, st := Encode(g.Tok, convs, seqLen)
		if len(samples) == 0 {
			return nil, fmt.Errorf("train: eval: %s: no conversation of %s's %s split has an assistant token within %d tokens", dir, v.Ref, split, seqLen)
		}
		rows := Pack(samples, seqLen)
		st.Rows = len(rows)
		m, err := model.New(g.P, batch, seqLen)
		if err != nil {
			return nil, fmt.Errorf("train: eval: %s: %w", dir, err)
		}
		loss, err := evalLoss(m, newBatcher(samples, rows, batch, seqLen), batch)
		if err != nil {
			return nil, fmt.Errorf("train: eval: %s: %w", dir, err)
		}
		out = append(out, EvalResult{Checkpoint: dir, Data: v.Ref.String(), Split: split, SeqLen: seqLen, Loss: loss,
			Perplexity: math.Exp(loss), Stats: st, Params: g.P.NumParams()})
	}
	return out, nil
}

// cmp0 is v, or def when v is 0.
func cmp0(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}
