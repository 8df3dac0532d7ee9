package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/train"
)

func newMergeCmd(stdout io.Writer) *cobra.Command {
	var base, out string
	cmd := &cobra.Command{
		Use:   "merge ADAPTER --base BASE -o OUT",
		Short: "Fold a LoRA adapter into its base model and write a full checkpoint",
		Long: `Merge a LoRA adapter (PEFT layout: adapter_config.json,
adapter_model.safetensors, such as RUN/adapter of 'sieve train --lora-r') into
its base model and write OUT as a full checkpoint in the Hugging Face layout
(config.json, model.safetensors in float32, tokenizer files): every adapted
projection becomes W + (alpha/r)·B·A (alpha/√r with rsLoRA). --base defaults
to the adapter's base_model_name_or_path.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			adapter := args[0]
			if out == "" {
				return usageError("train merge: -o OUT is required")
			}
			if _, err := os.Stat(filepath.Join(adapter, "adapter_config.json")); err != nil {
				return usageError("train merge: %s is not a LoRA adapter: %v", adapter, err)
			}
			if base == "" {
				data, err := os.ReadFile(filepath.Join(adapter, "adapter_config.json"))
				var ac struct {
					Base string `json:"base_model_name_or_path"`
				}
				if err != nil || json.Unmarshal(data, &ac) != nil || ac.Base == "" {
					return usageError("train merge: %s names no base model: give --base", adapter)
				}
				base = ac.Base
			}
			if _, err := os.Stat(base); err != nil {
				return usageError("train merge: --base: %v", err)
			}
			if err := train.Merge(adapter, base, out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "merged %s into %s: %s\n", adapter, base, out)
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "base", "", "base model directory (default: the adapter's base_model_name_or_path)")
	cmd.Flags().StringVarP(&out, "output", "o", "", "directory of the merged checkpoint")
	return cmd
}

func newExportCmd(stdout io.Writer) *cobra.Command {
	var f trainFlags
	cfg := train.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "export axolotl|trl NAME@VERSION --model BASE [train flags] [-o FILE]",
		Short: "Write an Axolotl YAML or a TRL SFTTrainer script that trains on a dataset version",
		Long: `Write the configuration of a fine-tuning run for another trainer, for moving
to GPUs: an Axolotl YAML (axolotl) or a Python script running TRL's SFTTrainer
(trl). It reads the version's Parquet shards where they are (train split to
train on, test split to evaluate on), fine-tunes --model (written as given: a
Hugging Face hub id or a path), counts the loss on assistant tokens only, uses
the chat template sieve renders with (the tokenizer's in --model when it is a
local directory, else the model's own) and the hyperparameters of the train
flags (--lr, --epochs, --seq-len, --batch-size, --lora-r, ... with sieve
train's defaults). The result goes to standard output or -o FILE; its
output_dir is --run-dir.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			kind := args[0]
			if kind != train.ExportAxolotl && kind != train.ExportTRL {
				return usageError("export: unknown kind %q: want axolotl or trl", kind)
			}
			changed := cmd.Flags().Changed
			if f.model == "" {
				return usageError("export: --model BASE is required (a hub id or a checkpoint directory)")
			}
			if f.init != "" || f.resume != "" {
				return usageError("export: --init and --resume do not apply: the exported run fine-tunes --model")
			}
			opt := train.Options{Store: datasets.Store{Root: f.store}, Data: args[1], Model: f.model, Output: f.runDir}
			c := train.DefaultConfig()
			copyChanged(changed, &c, cfg)
			if changed("pack") {
				c.Pad = !f.pack
			}
			if f.autoLR || f.autoBatch {
				return usageError("export: --lr auto and --batch-size auto run here: run 'sieve train --find-lr' and pass the numbers")
			}
			if err := c.Validate(); err != nil {
				return usageError("export: %v", err)
			}
			if err := loraFlags(changed, &opt, f); err != nil {
				return err
			}
			opt.Config = c
			if _, err := datasets.ParseRef(opt.Data); err != nil {
				return usageError("export: %v", err)
			}
			data, err := train.Export(context.Background(), kind, opt)
			if err != nil {
				return err
			}
			if f.output == "" {
				_, err = stdout.Write(data)
				return err
			}
			if err := os.WriteFile(f.output, data, 0o644); err != nil {
				return fmt.Errorf("export: %w", err)
			}
			return nil
		},
	}
	addTrainFlags(cmd, &f, &cfg, false)
	cmd.Flags().StringVar(&f.runDir, "run-dir", "", "output_dir of the exported run (default runs/NAME-KIND)")
	cmd.PreRunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 2 && f.runDir == "" {
			if r, err := datasets.ParseRef(args[1]); err == nil {
				f.runDir = filepath.Join("runs", r.Name+"-"+args[0])
			}
		}
		return nil
	}
	return cmd
}
