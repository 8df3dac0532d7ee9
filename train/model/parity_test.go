package model

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// golden is one testdata/parity_*.safetensors file written by parity.py.
type golden struct {
	cfg  Config
	p    *Params
	x    *Batch
	st   *SafetensorsFile
	read func(name string) []float32
}

func loadGolden(t *testing.T, name string) *golden {
	t.Helper()
	st, err := OpenSafetensors(filepath.Join("testdata", "parity_"+name+".safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := ParseConfig([]byte(st.Metadata["config"]))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewParams(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, nt := range p.Tensors() {
		if err := st.ReadInto(nt.Name, nt.Data); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) []float32 {
		v, _, err := st.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	_, shape, _ := st.Info("batch.ids")
	x := &Batch{B: shape[0], T: shape[1]}
	ints := func(name string) []int {
		v := read(name)
		out := make([]int, len(v))
		for i, f := range v {
			out[i] = int(f)
		}
		return out
	}
	x.IDs, x.Pos, x.Seg, x.Targets = ints("batch.ids"), ints("batch.pos"), ints("batch.seg"), ints("batch.targets")
	for _, v := range ints("batch.mask") {
		x.Mask = append(x.Mask, v != 0)
	}
	return &golden{cfg: cfg, p: p, x: x, st: st, read: read}
}

// TestPyTorchParity compares loss, logits and every gradient with the
// PyTorch golden files: within 1e-4 of float32 PyTorch (max error over
// the tensor's largest value), and reports the error against the float64
// PyTorch run.
func TestPyTorchParity(t *testing.T) {
	for _, name := range []string{"untied", "tied"} {
		t.Run(name, func(t *testing.T) {
			g := loadGolden(t, name)
			m, err := New(g.p, g.x.B, g.x.T)
			if err != nil {
				t.Fatal(err)
			}
			loss, err := m.Forward(g.x)
			if err != nil {
				t.Fatal(err)
			}
			m.Backward()
			for _, ref := range []string{"out", "out64"} {
				want := float64(g.read(ref + ".loss")[0])
				if d := math.Abs(float64(loss)-want) / want; d > 1e-5 {
					t.Errorf("loss %.7f, PyTorch %s %.7f (rel %.1e)", loss, ref, want, d)
				} else {
					t.Logf("loss %.7f, PyTorch %s %.7f (rel %.1e)", loss, ref, want, d)
				}
			}
			compare := func(what string, got []float32, ref string) relErr {
				want := to64(g.read(ref))
				e := compareGrad(got, want)
				if e.norm > 1e-4 {
					t.Errorf("%s vs %s: error %s", what, ref, e)
				}
				return e
			}
			var worst32, worst64 relErr
			upd := func(w *relErr, e relErr) {
				w.norm, w.elem = math.Max(w.norm, e.norm), math.Max(w.elem, e.elem)
			}
			t.Logf("logits vs PyTorch f32: %s; vs f64: %s", compare("logits", m.Logits(), "out.logits"), compare("logits", m.Logits(), "out64.logits"))
			for _, nt := range m.G.Tensors() {
				e32 := compare(nt.Name, nt.Data, "grad."+nt.Name)
				e64 := compare(nt.Name, nt.Data, "grad64."+nt.Name)
				upd(&worst32, e32)
				upd(&worst64, e64)
				t.Logf("%-48s vs f32 %s | vs f64 %s", nt.Name, e32, e64)
			}
			t.Logf("worst gradient error: vs PyTorch f32 %s; vs PyTorch f64 %s", worst32, worst64)
		})
	}
}

// TestWriteHFCheckpoints writes testdata/hf_<case>/ (config.json,
// model.safetensors, expected_logits.safetensors with Go's logits for
// plain causal rows) for `parity.py --transformers`, which loads them
// with AutoModelForCausalLM.from_pretrained. Run with
// SIEVE_WRITE_HF_CHECKPOINTS=1.
func TestWriteHFCheckpoints(t *testing.T) {
	if os.Getenv("SIEVE_WRITE_HF_CHECKPOINTS") == "" {
		t.Skip("set SIEVE_WRITE_HF_CHECKPOINTS=1 to write testdata/hf_*")
	}
	for _, name := range []string{"untied", "tied"} {
		g := loadGolden(t, name)
		dir := filepath.Join("testdata", "hf_"+name)
		if err := g.p.Save(dir, F32); err != nil {
			t.Fatal(err)
		}
		x := &Batch{B: g.x.B, T: g.x.T, IDs: g.x.IDs, Targets: g.x.Targets} // plain causal rows
		m, _ := New(g.p, x.B, x.T)
		if _, err := m.Forward(x); err != nil {
			t.Fatal(err)
		}
		ids := make([]float32, len(x.IDs))
		for i, id := range x.IDs {
			ids[i] = float32(id)
		}
		err := WriteSafetensors(filepath.Join(dir, "expected_logits.safetensors"), []NamedTensor{
			{Name: "ids", Shape: []int{x.B, x.T}, Data: ids},
			{Name: "logits", Shape: []int{x.B, x.T, g.cfg.VocabSize}, Data: m.Logits()},
		}, F32, nil)
		if err != nil {
			t.Fatal(err)
		}
		// The saved checkpoint loads back identically.
		q, err := Load(dir)
		if err != nil || maxAbsDiff(q.Data, g.p.Data) != 0 {
			t.Fatalf("reload: %v", err)
		}
		var c map[string]any
		data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
		json.Unmarshal(data, &c)
		t.Logf("wrote %s (model_type %v, tie %v)", dir, c["model_type"], c["tie_word_embeddings"])
	}
}

// TestHFCheckpoints loads the committed testdata/hf_* checkpoints (which
// parity.py --transformers loaded with from_pretrained) and checks that
// they hold the golden weights and give the logits stored beside them.
func TestHFCheckpoints(t *testing.T) {
	for _, name := range []string{"untied", "tied"} {
		g := loadGolden(t, name)
		dir := filepath.Join("testdata", "hf_"+name)
		p, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(p.Data, g.p.Data); d != 0 || p.Config.TieWordEmbeddings != g.cfg.TieWordEmbeddings {
			t.Fatalf("%s: checkpoint differs from the golden weights (%g)", dir, d)
		}
		st, err := OpenSafetensors(filepath.Join(dir, "expected_logits.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		ids, shape, _ := st.Read("ids")
		want, _, _ := st.Read("logits")
		st.Close()
		x := &Batch{B: shape[0], T: shape[1], IDs: make([]int, len(ids)), Targets: make([]int, len(ids))}
		for i, v := range ids {
			x.IDs[i] = int(v)
		}
		m, _ := New(p, x.B, x.T)
		if _, err := m.Forward(x); err != nil {
			t.Fatal(err)
		}
		if e := compareGrad(m.Logits(), to64(want)); e.norm > 1e-6 {
			t.Errorf("%s: logits differ: %s", dir, e)
		}
	}
}

// TestAllocations checks that a training step allocates only small
// bookkeeping (the goroutines that split the work, gonum's parallel
// Sgemm), never a buffer: a few tens of KB whatever the batch size.
func TestAllocations(t *testing.T) {
	g := loadGolden(t, "untied")
	m, _ := New(g.p, g.x.B, g.x.T)
	step := func() {
		m.Forward(g.x)
		m.Backward()
	}
	step()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const runs = 10
	for i := 0; i < runs; i++ {
		step()
	}
	runtime.ReadMemStats(&after)
	allocs := float64(after.Mallocs-before.Mallocs) / runs
	bytes := float64(after.TotalAlloc-before.TotalAlloc) / runs
	t.Logf("per Forward+Backward: %.0f allocations, %.0f bytes", allocs, bytes)
	if bytes > 64<<10 {
		t.Errorf("%.0f bytes allocated per step", bytes)
	}
}
