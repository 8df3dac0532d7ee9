package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train"
)

const sweepLong = `Train one run per configuration of a small search space and compare them
by their eval loss on the test split.

--lr, --epochs, --lora-r, --lora-alpha and --seq-len take lists of values
(--lr 1e-3,3e-3 --seq-len 256,512); every combination is a trial (a grid),
or, with --random N, N distinct combinations drawn from the grid with
--seed. A LoRA rank of 0 trains every weight. Every other flag is that of
'sieve train' and applies to every trial. Trials run one after the other
and share the data, a tokenizer trained on the train split and the
tokenized conversations.

OUTPUT (default runs/NAME-sweep) gets a run directory per trial, named by
its settings (lr0.003-seq256), sweep.json and sweep.md (the table, best
trial in bold) and sweep.png (eval loss against epoch per trial). A trial
that fails (diverged, out of memory) is in the table with its error. See
docs/train.md.`

// sweptFlags are the flags 'sieve train sweep' takes lists of.
var sweptFlags = map[string]bool{"lr": true, "epochs": true, "seq-len": true, "lora-r": true, "lora-alpha": true}

func newSweepCmd(stdout, stderr io.Writer) *cobra.Command {
	var f trainFlags
	cfg := train.DefaultConfig()
	var space train.SweepSpace
	cmd := &cobra.Command{
		Use:   "sweep [RECIPE] --data NAME@VERSION (--model DIR | --init CONFIG.json) [--lr A,B,...] [--epochs ...] [--lora-r ...] [--lora-alpha ...] [--seq-len ...] [--random N] [flags]",
		Short: "Train a grid (or a random draw) of configurations and name the best by eval loss",
		Long:  sweepLong,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			file := ""
			if len(args) == 1 {
				file = args[0]
			}
			fl := cmd.Flags()
			changed := func(name string) bool { return !sweptFlags[name] && fl.Changed(name) }
			opt, err := trainOptions(changed, file, f, cfg)
			if err != nil {
				return err
			}
			n := 0
			for name := range sweptFlags {
				if fl.Changed(name) {
					n++
				}
			}
			if n == 0 {
				return usageError("train sweep: nothing to sweep: give values to try with --lr, --epochs, --lora-r, --lora-alpha or --seq-len")
			}
			if (len(space.LoRARanks) > 0 || len(space.LoRAAlphas) > 0) && opt.Model == "" {
				return usageError("train sweep: --lora-r and --lora-alpha adapt a base model: give --model, not --init")
			}
			space.Seed = opt.Config.Seed
			if _, err := space.Trials(); err != nil {
				return usageError("%v", err)
			}
			ref, _ := datasets.ParseRef(opt.Data)
			if !fl.Changed("output") && opt.Output == filepath.Join("runs", ref.Name) {
				opt.Output = filepath.Join("runs", ref.Name+"-sweep")
			}
			return runSweep(train.SweepOptions{Base: opt, Space: space, Output: opt.Output}, f, stdout, stderr)
		},
	}
	addTrainFlags(cmd, &f, &cfg, true)
	fl := cmd.Flags()
	fl.Float64SliceVar(&space.LearningRates, "lr", nil, "peak learning rates to try")
	fl.IntSliceVar(&space.Epochs, "epochs", nil, "epochs to try (default: 3)")
	fl.IntSliceVar(&space.LoRARanks, "lora-r", nil, "LoRA ranks to try (0: train every weight)")
	fl.Float64SliceVar(&space.LoRAAlphas, "lora-alpha", nil, "LoRA alphas to try (0: the rank)")
	fl.IntSliceVar(&space.SeqLens, "seq-len", nil, "sequence lengths to try (default: 1024)")
	fl.IntVar(&space.Random, "random", 0, "train N configurations drawn at random (with --seed) from the grid instead of all of it")
	return cmd
}

func runSweep(opt train.SweepOptions, f trainFlags, stdout, stderr io.Writer) error {
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelInfo
	}
	if f.quiet {
		level = slog.LevelError
	}
	setupLogging(stderr, level)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	human := !f.json && !f.quiet
	bar := &trainBar{w: stderr, on: !f.quiet && !f.verbose && isTerminal(stderr)}
	opt.Base.OnStep = bar.step
	var name string
	opt.OnTrial = func(i, n int, p train.SweepPoint) { name = fmt.Sprintf("trial %d/%d %s", i+1, n, p.Name()) }
	opt.Base.OnStart = func(p train.Plan) {
		if human {
			bar.println(stdout, "%s: %d steps, train %s", name, p.Steps, dataLine(p.Train))
		}
	}
	opt.Base.OnRecord = func(r train.Record) {
		if human && r.EvalLoss != nil {
			bar.println(stdout, "  epoch %5.2f  step %5d  eval loss %.4f", r.Epoch, r.Step, *r.EvalLoss)
		}
	}
	res, err := train.Sweep(ctx, opt)
	bar.clear()
	if res == nil {
		return err
	}
	if f.json {
		data, _ := os.ReadFile(filepath.Join(opt.Output, train.SweepJSON))
		var v any
		if json.Unmarshal(data, &v) == nil {
			data, _ = json.Marshal(v)
			fmt.Fprintf(stdout, "%s\n", data)
		}
	} else if human {
		fmt.Fprintf(stdout, "\n%s\ntable %s, %s; plot %s\n", res.Markdown(), filepath.Join(opt.Output, train.SweepJSON),
			filepath.Join(opt.Output, train.SweepMarkdown), filepath.Join(opt.Output, train.SweepPlot))
		if b := res.BestName(); b != "" {
			fmt.Fprintf(stdout, "best: %s\n", filepath.Join(opt.Output, b))
		}
	}
	return err
}
