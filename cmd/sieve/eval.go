package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train"
)

func newEvalCmd(stdout io.Writer) *cobra.Command {
	var opt train.EvalOptions
	var store string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "eval CHECKPOINT... --data NAME@VERSION",
		Short: "Loss and perplexity of checkpoints on a version's test split, side by side",
		Long: `Evaluate one or more checkpoints (Hugging Face layout, or LoRA adapter
directories) on the test split of a dataset version: the mean loss per
assistant token (as 'sieve train' counts it) and its perplexity, one line per
checkpoint. Rows are --seq-len tokens (default: the checkpoint's own
trainer_state.json, else 1024), packed as training packs them; with a run's
own settings, a checkpoint's loss is the eval loss its run logged.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if opt.Data == "" {
				return usageError("eval: --data NAME@VERSION is required")
			}
			if _, err := datasets.ParseRef(opt.Data); err != nil {
				return usageError("eval: --data: %v", err)
			}
			if opt.SeqLen < 0 || opt.SeqLen == 1 || opt.BatchSize < 0 {
				return usageError("eval: want --seq-len ≥ 2 and --batch-size ≥ 1")
			}
			for _, a := range args {
				if _, err := os.Stat(a); err != nil {
					return usageError("eval: %v", err)
				}
			}
			opt.Store, opt.Checkpoints = datasets.Store{Root: store}, args
			res, err := train.Evaluate(context.Background(), opt)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				for _, r := range res {
					if err := enc.Encode(r); err != nil {
						return err
					}
				}
				return nil
			}
			st := res[0].Stats
			fmt.Fprintf(stdout, "%s, %s split: %d conversations (%d truncated, %d skipped), %s assistant tokens\n",
				res[0].Data, res[0].Split, st.Samples, st.Truncated, st.Skipped, humanCount(int(st.LossTokens)))
			tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "checkpoint\tparameters\tseq len\tloss\tperplexity")
			for _, r := range res {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%.4f\t%.2f\n", r.Checkpoint, humanCount(r.Params), r.SeqLen, r.Loss, r.Perplexity)
			}
			return tw.Flush()
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opt.Data, "data", "", "dataset version, NAME[@VERSION]")
	fl.StringVar(&store, "store", "store", "version store root")
	fl.StringVar(&opt.Split, "split", "test", "split to evaluate on")
	fl.IntVar(&opt.SeqLen, "seq-len", 0, "tokens per row (default: the checkpoint's seq_len, else 1024)")
	fl.IntVar(&opt.BatchSize, "batch-size", 0, "rows per batch (default: the checkpoint's, else 8)")
	fl.BoolVar(&asJSON, "json", false, "one JSON object per checkpoint")
	return cmd
}
