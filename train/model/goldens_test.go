package model

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sieve-data/sieve/internal/goldens"
)

// TestGoldenHashes checks the committed golden files, fixtures and their
// generators against testdata/SHA256SUMS: a golden that changes or goes
// missing fails here, not silently elsewhere.
func TestGoldenHashes(t *testing.T) {
	goldens.Check(t, "testdata")
}

// TestTransformersParityRecord checks testdata/transformers_parity.jsonl,
// the output of
//
//	cd train/model/testdata && python3 parity.py --transformers hf_untied hf_tied
//
// (transformers' LlamaForCausalLM on the golden batches, and
// from_pretrained on the checkpoints the Go test writes), against the
// goldens it was made from: every line passed, every case and checkpoint
// is there, and the float64 PyTorch loss it compared with is the one in
// today's parity_<case>.safetensors, whose checksum (and the
// checkpoints') SHA256SUMS records; so the record cannot silently
// describe other goldens than the committed ones.
func TestTransformersParityRecord(t *testing.T) {
	sums := goldens.Check(t, "testdata")
	f, err := os.Open(filepath.Join("testdata", "transformers_parity.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	type line struct {
		Case         string   `json:"case"`
		Impl         string   `json:"impl"`
		Transformers string   `json:"transformers"`
		LossGolden64 *float64 `json:"loss_golden64"`
		Checkpoint   string   `json:"checkpoint"`
		OK           bool     `json:"ok"`
	}
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if !l.OK {
			t.Errorf("a failed check is recorded: %s", sc.Text())
		}
		switch {
		case l.Case != "":
			seen["case "+l.Case+"/"+l.Impl] = true
			if l.Transformers == "" || l.LossGolden64 == nil {
				t.Errorf("incomplete record: %s", sc.Text())
				continue
			}
			g := loadGolden(t, l.Case)
			loss, _, err := g.st.Read("out64.loss")
			if err != nil {
				t.Fatal(err)
			}
			if float64(loss[0]) != *l.LossGolden64 {
				t.Errorf("%s/%s: the record compared with loss %v, parity_%s.safetensors holds %v: the record is of other goldens",
					l.Case, l.Impl, *l.LossGolden64, l.Case, loss[0])
			}
		case l.Checkpoint != "":
			seen["checkpoint "+l.Checkpoint] = true
			for _, file := range []string{"config.json", "model.safetensors", "expected_logits.safetensors"} {
				if _, ok := sums[l.Checkpoint+"/"+file]; !ok {
					t.Errorf("checkpoint %s: %s not in SHA256SUMS", l.Checkpoint, file)
				}
			}
		default:
			t.Errorf("unknown record: %s", sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"case untied/eager", "case untied/sdpa", "case tied/eager", "case tied/sdpa", "checkpoint hf_untied", "checkpoint hf_tied"} {
		if !seen[want] {
			t.Errorf("transformers_parity.jsonl has no %s", want)
		}
	}
}
