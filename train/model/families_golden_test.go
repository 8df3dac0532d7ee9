package model

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// The families against transformers: testdata/families.py builds each
// family at the real configuration of a checkpoint users fine-tune
// (cut to 2 layers and a vocabulary of 2048; Mistral's MLP to 1024),
// sets its weights from the portable generator below, and records
// transformers' (float64) loss, logits and gradients, full and through
// PEFT's LoRA, in testdata/families/families_<family>.safetensors.

// goldenScale returns the half-width a and centre c of the uniform
// values families.py gives tensor name (golden_scale there).
func goldenScale(name string, shape []int, hidden int) (a, c float64) {
	switch {
	case strings.HasSuffix(name, "norm.weight"):
		return 0.1, 1
	case strings.HasSuffix(name, ".bias"):
		return 0.5, 0
	case strings.HasSuffix(name, "embed_tokens.weight"), strings.HasSuffix(name, "lm_head.weight"):
		return 2 * math.Sqrt(3.0/float64(hidden)), 0
	case strings.HasSuffix(name, "lora_B.weight"):
		return 0.25 * math.Sqrt(3.0/float64(shape[1])), 0
	}
	return math.Sqrt(3.0 / float64(shape[len(shape)-1])), 0
}

// goldenValues fills dst with the values of tensor name, as families.py
// computes them: for element i, z = splitmix64(fnv1a64(name) +
// (i+1)·0x9E3779B97F4A7C15), v = float32((z>>40)·2⁻²³ − 1)·a + c), each
// float64 operation rounded (no fused multiply-add).
func goldenValues(dst []float32, name string, shape []int, hidden int) {
	a, c := goldenScale(name, shape, hidden)
	key := uint64(0xcbf29ce484222325)
	for i := 0; i < len(name); i++ {
		key = (key ^ uint64(name[i])) * 0x100000001b3
	}
	for i := range dst {
		z := key + uint64(i+1)*0x9e3779b97f4a7c15
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		u := float64(z>>40)*0x1p-23 - 1
		dst[i] = float32(float64(u*a) + c)
	}
}

// familyGolden is one testdata/families/families_<family>.safetensors.
type familyGolden struct {
	cfg    Config
	st     *SafetensorsFile
	x      *Batch
	checks map[string]any // what families.py recorded of transformers' model
}

func loadFamilyGolden(t *testing.T, family string) *familyGolden {
	t.Helper()
	st, err := OpenSafetensors(filepath.Join("testdata", "families", "families_"+family+".safetensors"))
	if err != nil {
		t.Fatal(err) // a missing golden fails: run families.py (see its doc)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := ParseConfig([]byte(st.Metadata["config"]))
	if err != nil {
		t.Fatal(err)
	}
	g := &familyGolden{cfg: cfg, st: st}
	if err := json.Unmarshal([]byte(st.Metadata["checks"]), &g.checks); err != nil {
		t.Fatal(err)
	}
	_, shape, _ := st.Info("batch.ids")
	x := &Batch{B: shape[0], T: shape[1]}
	ints := func(name string) []int {
		v := g.read(t, name)
		out := make([]int, len(v))
		for i, f := range v {
			out[i] = int(f)
		}
		return out
	}
	x.IDs, x.Pos, x.Targets = ints("batch.ids"), ints("batch.pos"), ints("batch.targets")
	for _, v := range ints("batch.mask") {
		x.Mask = append(x.Mask, v != 0)
	}
	g.x = x
	return g
}

func (g *familyGolden) read(t *testing.T, name string) []float32 {
	t.Helper()
	v, _, err := g.st.Read(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// rowsOf returns what families.py stores of a tensor [rows, cols]: rows 0
// and rows−1 (a 1-D tensor whole).
func rowsOf(v []float32, shape []int) []float32 {
	if len(shape) == 1 {
		return v
	}
	cols := len(v) / shape[0]
	return append(append([]float32(nil), v[:cols]...), v[len(v)-cols:]...)
}

func norm64(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// familyErrors is what a comparison measured.
type familyErrors struct {
	lossRel       float64 // |loss − ref| / ref
	logitsAbs     float64 // max |logit − ref|
	logitsMax     float64 // max |ref logit|
	gradRel       float64 // worst over tensors of max |g − ref| / max |ref| on the stored rows
	gradRelName   string
	gradNormRel   float64 // worst |‖g‖ − ‖ref‖| / ‖ref‖ over whole tensors
	gradNormName  string
	tensors       int
	f32LogitsAbs  float64 // transformers' own float32 run against its float64 run
	f32GradRel    float64
	f32LossRel    float64
	referenceLoss float64
	sieveLoss     float64
}

func (e familyErrors) String() string {
	return fmt.Sprintf("loss %.7f vs %.7f (rel %.1e); logits max abs err %.2e (max |logit| %.2f); gradients: worst rows %.1e (%s), worst norm %.1e (%s), %d tensors; transformers float32 vs its float64: logits %.2e, gradients %.1e, loss %.1e",
		e.sieveLoss, e.referenceLoss, e.lossRel, e.logitsAbs, e.logitsMax, e.gradRel, e.gradRelName, e.gradNormRel, e.gradNormName, e.tensors,
		e.f32LogitsAbs, e.f32GradRel, e.f32LossRel)
}

// compare measures m's last Forward and Backward against the golden run
// kind ("full" or "lora"); grads are the tensors with their gradients
// and shapes.
func (g *familyGolden) compare(t *testing.T, kind string, loss float32, logits []float32, grads []TrainableTensor, shapes map[string][]int) familyErrors {
	t.Helper()
	var e familyErrors
	e.referenceLoss = float64(g.read(t, kind+".loss")[0])
	e.sieveLoss = float64(loss)
	e.lossRel = math.Abs(e.sieveLoss-e.referenceLoss) / e.referenceLoss
	ref := g.read(t, kind+".logits")
	if len(ref) != len(logits) {
		t.Fatalf("%s: %d logits, golden %d", kind, len(logits), len(ref))
	}
	for i, v := range ref {
		e.logitsAbs = math.Max(e.logitsAbs, math.Abs(float64(logits[i])-float64(v)))
		e.logitsMax = math.Max(e.logitsMax, math.Abs(float64(v)))
	}
	// Every tensor the golden has a gradient of is one of ours, and the
	// other way round.
	want := map[string]bool{}
	for _, name := range g.st.Names() {
		if n, ok := strings.CutPrefix(name, kind+".gradnorm."); ok {
			want[n] = true
		}
	}
	for _, tt := range grads {
		if !want[tt.Name] {
			t.Errorf("%s: sieve has %s, transformers has no such parameter", kind, tt.Name)
			continue
		}
		delete(want, tt.Name)
		e.tensors++
		rows := rowsOf(tt.G, shapes[tt.Name])
		refRows := g.read(t, kind+".grad."+tt.Name)
		var d, mx float64
		for i, v := range refRows {
			d = math.Max(d, math.Abs(float64(rows[i])-float64(v)))
			mx = math.Max(mx, math.Abs(float64(v)))
		}
		if r := d / math.Max(mx, 1e-30); r > e.gradRel || math.IsNaN(r) {
			e.gradRel, e.gradRelName = r, tt.Name
		}
		refNorm := float64(g.read(t, kind+".gradnorm."+tt.Name)[0])
		if r := math.Abs(norm64(tt.G)-refNorm) / refNorm; r > e.gradNormRel || math.IsNaN(r) {
			e.gradNormRel, e.gradNormName = r, tt.Name
		}
	}
	for n := range want {
		t.Errorf("%s: transformers has %s, sieve has no such parameter", kind, n)
	}
	if c, ok := g.checks[kind].(map[string]any); ok {
		e.f32LogitsAbs, _ = c["logits_maxabs_f32"].(float64)
		e.f32GradRel, _ = c["worst_grad_rel_f32"].(float64)
		e.f32LossRel, _ = c["loss_rel_f32"].(float64)
	}
	return e
}

// familyGoldenCases: each golden, the family its config must parse as,
// and the tensors beyond Llama's it must have.
var familyGoldenCases = []struct {
	name   string
	family Family
	extra  []string // suffixes of layer tensors the family adds
}{
	{"llama", FamilyLlama, nil},                                        // Llama-3.2-1B: rope_scaling llama3, tied
	{"qwen2", FamilyQwen2, []string{".bias"}},                          // Qwen2.5-0.5B-Instruct
	{"qwen3", FamilyQwen3, []string{"q_norm.weight", "k_norm.weight"}}, // Qwen3-0.6B
	{"mistral", FamilyMistral, nil},                                    // Mistral-7B-v0.1, sliding_window 4096
}

// Tolerances against transformers' float64 run, a few times the worst
// measured (docs/train.md gives the numbers). sieve computes in float32
// throughout: its error is float32 rounding over sums of up to 4096
// products, two layers deep, about what transformers' own float32 run
// shows, and, for the logits, the rotary frequencies: sieve's differ from
// the model's float32 buffer by up to 2 ulp (torch's float32 pow on the
// GPU against a float64 pow rounded once), which at positions
// 3000..3015 moves Llama 3.2's logits by up to 1.3e-4. With the model's
// own frequencies substituted the logits agree within famRopeLogitsRel.
const (
	famLossRel        = 5e-6 // loss, relative (worst seen 5.8e-7)
	famLogitsRel      = 5e-5 // max abs logit error over max |logit| (worst seen 1.5e-5, Llama 3.2)
	famRopeLogitsRel  = 5e-6 // the same with transformers' rotary frequencies (worst seen 7.1e-7)
	famGradRowsRel    = 2e-4 // per tensor: max abs error on the stored rows over their max |gradient| (worst seen 3.5e-5)
	famGradNormRel    = 2e-5 // per tensor: the whole gradient's L2 norm, relative (worst seen 2.3e-6)
	famRopeFreqRelTol = 3e-7 // sieve's rotary frequencies against the model's buffer, relative (worst seen 1.5e-7)
)

func (e familyErrors) check(t *testing.T, what string) {
	t.Helper()
	t.Logf("%s: %s", what, e)
	switch {
	case !(e.lossRel <= famLossRel):
		t.Errorf("%s: loss relative error %.2e above %.0e", what, e.lossRel, famLossRel)
	case !(e.logitsAbs <= famLogitsRel*e.logitsMax):
		t.Errorf("%s: logits max abs error %.2e above %.0e × %.2f", what, e.logitsAbs, famLogitsRel, e.logitsMax)
	case !(e.gradRel <= famGradRowsRel):
		t.Errorf("%s: gradient of %s: error %.2e above %.0e", what, e.gradRelName, e.gradRel, famGradRowsRel)
	case !(e.gradNormRel <= famGradNormRel):
		t.Errorf("%s: gradient norm of %s: relative error %.2e above %.0e", what, e.gradNormName, e.gradNormRel, famGradNormRel)
	}
}

// TestTransformersFamilies runs each family's golden through sieve, full
// fine-tuning and LoRA (r 8, alpha 16, all seven projections; biases
// and q/k norms frozen as PEFT freezes them), and compares the loss,
// the logits and the gradients with transformers' and PEFT's float64
// run, within the tolerances above. It also checks that the config
// parses as the right family, that the weights' names and shapes are
// transformers' (every parameter with a gradient there is one here),
// that the generator gives the values families.py gave (the first row
// of every tensor, bit for bit), and that sieve's rotary frequencies
// are the model's (Llama 3.2's rope_scaling llama3).
func TestTransformersFamilies(t *testing.T) {
	for _, tc := range familyGoldenCases {
		t.Run(tc.name, func(t *testing.T) {
			defer debug.FreeOSMemory()
			g := loadFamilyGolden(t, tc.name)
			c := g.cfg
			if c.Family() != tc.family {
				t.Fatalf("config parses as %v, want %v", c.Family(), tc.family)
			}
			t.Logf("%s: %v, D %d, F %d, L %d, heads %d/%d, head_dim %d, V %d, tied %v, window %d; cut: %s; transformers: %v",
				tc.name, c.Family(), c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers, c.NumAttentionHeads, c.KVHeads(), c.Hd(),
				c.VocabSize, c.TieWordEmbeddings, c.SlidingWindow(), g.st.Metadata["cuts"], g.checks["transformers"])
			p, err := NewParams(c)
			if err != nil {
				t.Fatal(err)
			}
			shapes := map[string][]int{}
			extra := 0
			for _, nt := range p.Tensors() {
				shapes[nt.Name] = nt.Shape
				goldenValues(nt.Data, nt.Name, nt.Shape, c.HiddenSize)
				first := nt.Data
				if len(nt.Shape) > 1 {
					first = nt.Data[:nt.Shape[len(nt.Shape)-1]]
				}
				if want := g.read(t, "w."+nt.Name); maxAbsDiff(first, want) != 0 {
					t.Fatalf("%s: the generator's values differ from families.py's", nt.Name)
				}
				for _, s := range tc.extra {
					if strings.HasSuffix(nt.Name, s) {
						extra++
					}
				}
			}
			if want := c.NumHiddenLayers * map[string]int{"qwen2": 3, "qwen3": 2}[tc.name]; extra != want {
				t.Errorf("%d tensors %v, want %d", extra, tc.extra, want)
			}
			// Rotary frequencies: transformers' float32 buffer.
			inv := ropeInvFreqOf(c)
			want := g.read(t, "rope.inv_freq")
			var worst float64
			for i, v := range want {
				worst = math.Max(worst, math.Abs(float64(inv[i])-float64(v))/float64(v))
			}
			t.Logf("rotary inverse frequencies: %d, worst relative difference %.1e", len(inv), worst)
			if worst > famRopeFreqRelTol || len(inv) != len(want) {
				t.Errorf("rotary inverse frequencies differ from transformers' by %.1e", worst)
			}

			// Full fine-tuning.
			m := newModel(t, p, g.x.B, g.x.T)
			loss := step(t, m, g.x)
			g.compare(t, "full", loss, m.Logits(), m.Trainable(), shapes).check(t, tc.name+" full")
			// The logits again with the model's own rotary frequencies.
			copy(m.invFreq, want)
			if _, err := m.Forward(g.x); err != nil {
				t.Fatal(err)
			}
			var d, mx float64
			for i, v := range g.read(t, "full.logits") {
				d = math.Max(d, math.Abs(float64(m.Logits()[i])-float64(v)))
				mx = math.Max(mx, math.Abs(float64(v)))
			}
			t.Logf("%s full, transformers' rotary frequencies: logits max abs err %.2e (%.1e of max |logit|)", tc.name, d, d/mx)
			if !(d <= famRopeLogitsRel*mx) {
				t.Errorf("%s full, transformers' rotary frequencies: logits max abs error %.2e above %.0e × %.2f", tc.name, d, famRopeLogitsRel, mx)
			}
			m = nil
			runtime.GC()

			// LoRA: every adapter from the generator, G released.
			m = newModel(t, p, g.x.B, g.x.T)
			m.G = nil
			runtime.GC()
			if err := m.EnableLoRA(LoRAConfig{Rank: 8, Alpha: 16}); err != nil {
				t.Fatal(err)
			}
			if s, _ := g.checks["lora_scaling"].(float64); s != m.lora.cfg.Scaling() {
				t.Errorf("PEFT's scaling %g, sieve's %g", s, m.lora.cfg.Scaling())
			}
			for i, tt := range m.Trainable() {
				shapes[tt.Name] = m.lora.shapes[i]
				goldenValues(tt.P, tt.Name, m.lora.shapes[i], c.HiddenSize)
			}
			loss = step(t, m, g.x)
			g.compare(t, "lora", loss, m.Logits(), m.Trainable(), shapes).check(t, tc.name+" LoRA")
		})
	}
}

// TestFamiliesRecord checks testdata/families/families_record.jsonl, the
// output of families.py: every line passed, every family and
// checkpoint is there, and each family's golden is the file it wrote
// (its size; SHA256SUMS holds the hashes of both).
func TestFamiliesRecord(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "families", "families_record.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l struct {
			Family     string `json:"family"`
			Checkpoint string `json:"checkpoint"`
			File       string `json:"file"`
			Bytes      int64  `json:"bytes"`
			OK         bool   `json:"ok"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		if !l.OK {
			t.Errorf("a failed check is recorded: %.500s", sc.Text())
			continue
		}
		switch {
		case l.Family != "":
			seen["family "+l.Family] = true
			fi, err := os.Stat(filepath.Join("testdata", "families", l.File))
			if err != nil || fi.Size() != l.Bytes {
				t.Errorf("%s: the record's file %s of %d bytes: %v", l.Family, l.File, l.Bytes, err)
			}
		case l.Checkpoint != "":
			seen["checkpoint "+l.Checkpoint] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range familyGoldenCases {
		for _, w := range []string{"family " + tc.name, "checkpoint hf_" + tc.name} {
			if !seen[w] {
				t.Errorf("families_record.jsonl has no passing %s", w)
			}
		}
	}
}
