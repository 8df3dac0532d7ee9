package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTrainPrecision runs sieve train and sieve train sweep with
// --precision: the default (auto) trains in fp32 on this build and says
// why, bf16 is taken when asked and recorded in trainer_state.json (for
// each trial of a sweep too), and an unknown value is refused.
func TestTrainPrecision(t *testing.T) {
	dir := t.TempDir()
	store := sumsStore(t, dir, 16, 4)
	cfg := tinyConfig(t, dir, 1, 64)
	base := []string{"--store", store, "--data", "sums@latest", "--init", cfg, "--vocab-size", "300", "--seq-len", "64", "--batch-size", "2", "--max-steps", "2"}
	state := func(dir string) (prec, cfgPrec string) {
		t.Helper()
		var st struct {
			Precision string `json:"precision"`
			Config    struct {
				Precision string `json:"precision"`
			} `json:"config"`
		}
		data, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
		if err == nil {
			err = json.Unmarshal(data, &st)
		}
		if err != nil {
			t.Fatal(err)
		}
		return st.Precision, st.Config.Precision
	}

	out := filepath.Join(dir, "auto")
	r := sieve(t, append([]string{"train", "--output", out}, base...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "precision: fp32 (auto: ") {
		t.Errorf("default: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if p, _ := state(out); p != "fp32" {
		t.Errorf("default: trainer_state precision %q", p)
	}

	out = filepath.Join(dir, "bf16")
	r = sieve(t, append([]string{"train", "--output", out, "--precision", "bf16"}, base...)...)
	if r.code != 0 || !strings.Contains(r.stdout, "precision: bf16 (asked") {
		t.Errorf("--precision bf16: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if p, c := state(out); p != "bf16" || c != "bf16" {
		t.Errorf("--precision bf16: trainer_state precision %q, config %q", p, c)
	}

	out = filepath.Join(dir, "sweep")
	r = sieve(t, append([]string{"train", "sweep", "--output", out, "--lr", "1e-3", "--precision", "bf16"}, base...)...)
	if r.code != 0 {
		t.Fatalf("sweep --precision bf16: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	trials, _ := filepath.Glob(filepath.Join(out, "*", "trainer_state.json"))
	if len(trials) != 1 {
		t.Fatalf("sweep: trials %v", trials)
	}
	if p, _ := state(filepath.Dir(trials[0])); p != "bf16" {
		t.Errorf("sweep trial: precision %q", p)
	}

	r = sieve(t, append([]string{"train", "--output", filepath.Join(dir, "x"), "--precision", "fp16"}, base...)...)
	if r.code != 2 || !strings.Contains(r.stderr, `precision "fp16": want fp32, bf16 or auto`) {
		t.Errorf("--precision fp16: exit %d\n%s", r.code, r.stderr)
	}
}
