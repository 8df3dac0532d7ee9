package train

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/sieve-data/sieve/train/model"
	"github.com/sieve-data/sieve/train/tokenizer"
)

// Merge folds the LoRA adapter in adapterDir (PEFT layout:
// adapter_config.json, adapter_model.safetensors) into the base model
// in baseDir and writes the result to out as a full checkpoint in the
// Hugging Face layout: config.json (the base's), model.safetensors
// (float32, every adapted projection W + (alpha/r)·B·A, or alpha/√r
// with rsLoRA, computed in float64 and rounded once; every other tensor
// the base's as it is), and the tokenizer files (the adapter
// directory's when it has them, else the base's). A quantized (QLoRA)
// run's adapter is merged into the float32 base given here.
func Merge(adapterDir, baseDir, out string) error {
	p, err := model.Load(baseDir)
	if err != nil {
		return fmt.Errorf("train: merge: base model: %w", err)
	}
	m, err := model.New(p, 1, 1)
	if err != nil {
		return fmt.Errorf("train: merge: %w", err)
	}
	if err := m.LoadAdapter(adapterDir); err != nil {
		return fmt.Errorf("train: merge: %w", err)
	}
	merged, err := m.MergedParams()
	if err != nil {
		return fmt.Errorf("train: merge: %w", err)
	}
	tokDir := adapterDir
	if _, err := os.Stat(filepath.Join(adapterDir, "tokenizer.json")); err != nil {
		tokDir = baseDir
	}
	tok, err := tokenizer.LoadDir(tokDir)
	if err != nil {
		return fmt.Errorf("train: merge: tokenizer: %w", err)
	}
	if err := merged.Save(out, model.F32); err != nil {
		return fmt.Errorf("train: merge: writing %s: %w", out, err)
	}
	if err := tok.SaveDir(out); err != nil {
		return fmt.Errorf("train: merge: writing %s: %w", out, err)
	}
	return nil
}
