package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
	"gonum.org/v1/gonum/blas/gonum"
)

// genericBLAS is gonum's implementation under another type, so that
// nativeBLAS reports false and the model takes the path it takes with
// OpenBLAS (products passed as written, rows split by gemm).
type genericBLAS struct{ gonum.Implementation }

// withBLAS runs f with the native kernels and with genericBLAS.
func withBLAS(t *testing.T, f func(t *testing.T)) {
	prev := blas32.Implementation()
	defer blas32.Use(prev)
	blas32.Use(gonum.Implementation{})
	t.Run("native", f)
	blas32.Use(genericBLAS{})
	t.Run("generic", f)
}

// loraModule returns the module of a PEFT adapter tensor name
// (base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight →
// model.layers.0.self_attn.q_proj) and whether it is lora_A.
func loraModule(name string) (string, bool) {
	s := strings.TrimPrefix(name, peftPrefix)
	if m, ok := strings.CutSuffix(s, ".lora_A.weight"); ok {
		return m, true
	}
	return strings.TrimSuffix(s, ".lora_B.weight"), false
}

// randomizeB fills every lora_B with N(0, std²) values, so that the
// adapters change the model and lora_A gets a gradient.
func randomizeB(m *Model, seed uint64, std float64) {
	r := rand.New(rand.NewPCG(seed, 3))
	for _, t := range m.Trainable() {
		if _, isA := loraModule(t.Name); !isA {
			for i := range t.P {
				t.P[i] = float32(r.NormFloat64() * std)
			}
		}
	}
}

// refAdapters returns the model's adapters as float64 views for
// refForwardLoRA, keyed by PEFT tensor name as well.
func refAdapters(m *Model) (*refLoRA, map[string][]float64) {
	c, _ := m.LoRA()
	l := &refLoRA{r: c.Rank, scale: c.Scaling(), A: map[string][]float64{}, B: map[string][]float64{}}
	byName := map[string][]float64{}
	for _, t := range m.Trainable() {
		mod, isA := loraModule(t.Name)
		v := to64(t.P)
		byName[t.Name] = v
		if isA {
			l.A[mod] = v
		} else {
			l.B[mod] = v
		}
	}
	return l, byName
}

// namedWeights64 returns every base weight of p in float64 by name.
func namedWeights64(p *Params) map[string][]float64 {
	w := map[string][]float64{}
	for _, nt := range p.Tensors() {
		w[nt.Name] = to64(nt.Data)
	}
	return w
}

func newModel(t testing.TB, p *Params, b, tt int) *Model {
	t.Helper()
	m, err := New(p, b, tt)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func step(t testing.TB, m *Model, x *Batch) float32 {
	t.Helper()
	loss, err := m.Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(); err != nil {
		t.Fatal(err)
	}
	return loss
}

// TestGradLoRA checks the loss, the logits and the gradient of every
// adapter tensor against central differences of the float64 reference
// with adapters, for both tiny models, all or some targets, plain and
// rank-stabilised scaling, float32 and NF4 bases.
func TestGradLoRA(t *testing.T) {
	defer func(b int) { attnBlock = b }(attnBlock)
	attnBlock = 4
	cases := []struct {
		name, model string
		cfg         LoRAConfig
		quantize    bool
	}{
		{"all", "untied-gqa", LoRAConfig{Rank: 3, Alpha: 6, Seed: 1}, false},
		{"rslora-some", "tied-mqa-hd6", LoRAConfig{Rank: 2, Alpha: 3, RSLoRA: true, Targets: []string{"v_proj", "o_proj", "up_proj", "down_proj"}, Seed: 2}, false},
		{"qlora", "untied-gqa", LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "k_proj", "gate_proj", "down_proj"}, Seed: 3}, true},
		// Biases and q/k norms stay frozen (PEFT's bias "none"); the
		// adapters' gradients flow through them.
		{"qwen2", "qwen2-bias", LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "k_proj", "v_proj", "down_proj"}, Seed: 4}, false},
		{"qwen3-qlora", "qwen3-qknorm", LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "k_proj", "o_proj", "up_proj"}, Seed: 5}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			withBLAS(t, func(t *testing.T) { gradLoRA(t, tc.model, tc.cfg, tc.quantize) })
		})
	}
}

// gradLoRA is one case of TestGradLoRA.
func gradLoRA(t *testing.T, model string, cfg LoRAConfig, quantize bool) {
	c := tinyConfigs()[model]
	p := randomParams(t, c, 11)
	x := tinyBatch(c.VocabSize)
	m := newModel(t, p, 2, 9)
	if err := m.EnableLoRA(cfg); err != nil {
		t.Fatal(err)
	}
	randomizeB(m, 5, 0.3)
	if quantize {
		if err := m.QuantizeBase(16); err != nil {
			t.Fatal(err)
		}
	}
	loss := step(t, m, x)
	base, err := m.baseParams() // dequantized where quantized
	if err != nil {
		t.Fatal(err)
	}
	w := namedWeights64(base)
	lora, byName := refAdapters(m)
	refLoss, refLogits := refForwardLoRA(c, w, lora, x)
	if d := math.Abs(float64(loss)-refLoss) / refLoss; d > 1e-6 {
		t.Errorf("loss %g, float64 reference %g (rel %.1e)", loss, refLoss, d)
	}
	if e := compareGrad(m.Logits(), refLogits); e.norm > 1e-5 || math.IsNaN(e.norm) {
		t.Errorf("logits vs float64 reference: %s", e)
	}
	// The adapters change the model: without them the loss differs.
	if noLoRA, _ := refForward(c, w, x); math.Abs(noLoRA-refLoss) < 1e-3 {
		t.Fatalf("adapters barely change the loss (%g vs %g): test is vacuous", noLoRA, refLoss)
	}
	worst := relErr{}
	f := func() float64 { l, _ := refForwardLoRA(c, w, lora, x); return l }
	for _, tt := range m.Trainable() {
		e := checkGrad(t, tt.Name, tt.G, fdGrad(f, byName[tt.Name]), 1e-4)
		worst.norm, worst.elem = math.Max(worst.norm, e.norm), math.Max(worst.elem, e.elem)
	}
	t.Logf("%d adapter tensors; worst gradient error %s", len(m.Trainable()), worst)
}

// TestLoRAZeroB: with lora_B = 0 (the initialisation) the adapted model
// computes exactly the base model's loss and logits; lora_A gets no
// gradient and lora_B does.
func TestLoRAZeroB(t *testing.T) {
	for name, c := range tinyConfigs() {
		p := randomParams(t, c, 3)
		x := tinyBatch(c.VocabSize)
		base := newModel(t, p, 2, 9)
		want := step(t, base, x)
		wantLogits := append([]float32(nil), base.Logits()...)

		m := newModel(t, p, 2, 9)
		if err := m.EnableLoRA(LoRAConfig{Rank: 4, Alpha: 8, Seed: 9}); err != nil {
			t.Fatal(err)
		}
		if got := step(t, m, x); got != want {
			t.Errorf("%s: loss with lora_B = 0 is %v, base %v", name, got, want)
		}
		if d := maxAbsDiff(m.Logits(), wantLogits); d != 0 {
			t.Errorf("%s: logits differ from the base by %g", name, d)
		}
		for _, tt := range m.Trainable() {
			_, isA := loraModule(tt.Name)
			var nz float64
			for _, v := range tt.G {
				nz = math.Max(nz, math.Abs(float64(v)))
			}
			var pmax float64
			for _, v := range tt.P {
				pmax = math.Max(pmax, math.Abs(float64(v)))
			}
			if isA && (nz != 0 || pmax == 0) {
				t.Errorf("%s: %s: lora_A max |grad| %g (want 0), max |value| %g (want Kaiming-uniform)", name, tt.Name, nz, pmax)
			}
			if !isA && (nz == 0 || pmax != 0) {
				t.Errorf("%s: %s: lora_B max |grad| %g (want > 0), max |value| %g (want 0)", name, tt.Name, nz, pmax)
			}
		}
	}
}

// TestLoRAInit: lora_A is U(−1/√in, 1/√in) (kaiming_uniform_ with
// a = √5), fills its range, depends on the seed only.
func TestLoRAInit(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	mk := func(seed uint64) []TrainableTensor {
		m := newModel(t, randomParams(t, c, 1), 1, 4)
		if err := m.EnableLoRA(LoRAConfig{Rank: 8, Seed: seed}); err != nil {
			t.Fatal(err)
		}
		return m.Trainable()
	}
	a, b, other := mk(5), mk(5), mk(6)
	for i, tt := range a {
		if _, isA := loraModule(tt.Name); !isA {
			continue
		}
		in := len(tt.P) / 8
		bound := 1 / math.Sqrt(float64(in))
		var mx float64
		for _, v := range tt.P {
			mx = math.Max(mx, math.Abs(float64(v)))
		}
		if mx > bound || mx < 0.8*bound {
			t.Errorf("%s: max |A| %g, want close to and at most 1/√%d = %g", tt.Name, mx, in, bound)
		}
		if maxAbsDiff(tt.P, b[i].P) != 0 || maxAbsDiff(tt.P, other[i].P) == 0 {
			t.Errorf("%s: initialisation does not depend on the seed alone", tt.Name)
		}
	}
}

// TestLoRAFrozenBase: with LoRA on, Forward/Backward/ZeroGrad neither
// write the base weights nor the base gradients (filled here with a
// sentinel), and work with G released.
func TestLoRAFrozenBase(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	p := randomParams(t, c, 4)
	x := tinyBatch(c.VocabSize)
	m := newModel(t, p, 2, 9)
	for i := range m.G.Data {
		m.G.Data[i] = 0.25
	}
	wantP := append([]float32(nil), p.Data...)
	if err := m.EnableLoRA(LoRAConfig{Rank: 2, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	randomizeB(m, 1, 0.2)
	step(t, m, x)
	m.ZeroGrad()
	step(t, m, x)
	if err := m.BackwardScaled(0.5); err != nil {
		t.Fatal(err)
	}
	for i, v := range m.G.Data {
		if v != 0.25 {
			t.Fatalf("base gradient %d written: %v", i, v)
		}
	}
	if d := maxAbsDiff(p.Data, wantP); d != 0 {
		t.Fatalf("base weights changed by %g", d)
	}
	// Accumulation: two Backwards (scale 1 and 0.5) give 1.5× one.
	got := map[string][]float32{}
	for _, tt := range m.Trainable() {
		got[tt.Name] = append([]float32(nil), tt.G...)
	}
	m.ZeroGrad()
	m.Backward()
	for _, tt := range m.Trainable() {
		for i, v := range tt.G {
			if d := math.Abs(float64(got[tt.Name][i] - 1.5*v)); d > 1e-5*math.Abs(float64(v))+1e-9 {
				t.Fatalf("%s: accumulated gradient %g, want 1.5×%g", tt.Name, got[tt.Name][i], v)
			}
		}
	}
	// G released.
	m.G = nil
	step(t, m, x)
	m.ZeroGrad()
}

// TestLoRAMerge: the merged weights give the adapted model's logits, in
// place (float32 base) and from an NF4 base.
func TestLoRAMerge(t *testing.T) {
	for _, quantize := range []bool{false, true} {
		c := tinyConfigs()["tied-mqa-hd6"]
		p := randomParams(t, c, 6)
		x := tinyBatch(c.VocabSize)
		m := newModel(t, p, 2, 9)
		if err := m.EnableLoRA(LoRAConfig{Rank: 3, Alpha: 5, Targets: []string{"q_proj", "k_proj", "o_proj", "gate_proj", "down_proj"}, Seed: 4}); err != nil {
			t.Fatal(err)
		}
		randomizeB(m, 2, 0.3)
		if quantize {
			if err := m.QuantizeBase(0); err != nil {
				t.Fatal(err)
			}
		}
		loss, _ := m.Forward(x)
		want := append([]float32(nil), m.Logits()...)

		merged, err := m.MergedParams()
		if err != nil {
			t.Fatal(err)
		}
		mm := newModel(t, merged, 2, 9)
		got, _ := mm.Forward(x)
		e := compareGrad(mm.Logits(), to64(want))
		t.Logf("quantized %v: merged loss %.7f, adapted %.7f; logits %s", quantize, got, loss, e)
		if e.norm > 1e-5 || math.Abs(float64(got-loss)) > 1e-5*float64(loss) {
			t.Errorf("quantized %v: merged model differs: logits %s, loss %v vs %v", quantize, e, got, loss)
		}

		if err := m.MergeLoRA(); err != nil {
			t.Fatal(err)
		}
		if _, on := m.LoRA(); on || m.Quantized() || m.G == nil || len(m.Trainable()) != len(merged.Tensors()) {
			t.Fatalf("after MergeLoRA: LoRA %v, quantized %v, G %v, %d trainable", on, m.Quantized(), m.G != nil, len(m.Trainable()))
		}
		if d := maxAbsDiff(m.P.Data, merged.Data); d != 0 {
			t.Errorf("quantized %v: MergeLoRA weights differ from MergedParams by %g", quantize, d)
		}
		m.Forward(x)
		if d := maxAbsDiff(m.Logits(), mm.Logits()); d != 0 {
			t.Errorf("quantized %v: logits after MergeLoRA differ by %g", quantize, d)
		}
		if err := m.MergeLoRA(); err == nil {
			t.Error("MergeLoRA twice: no error")
		}
	}
}

// TestQLoRAEqualsDequantized: the QLoRA model computes exactly what LoRA
// on the dequantized weights computes (logits, loss, adapter gradients
// bit for bit), and holds less.
func TestQLoRAEqualsDequantized(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	p := randomParams(t, c, 8)
	x := tinyBatch(c.VocabSize)
	cfg := LoRAConfig{Rank: 4, Alpha: 8, Seed: 7}
	q := newModel(t, p, 2, 9)
	if err := q.EnableLoRA(cfg); err != nil {
		t.Fatal(err)
	}
	randomizeB(q, 3, 0.2)
	before := q.Footprint()
	if err := q.QuantizeBase(32); err != nil {
		t.Fatal(err)
	}
	after := q.Footprint()
	if err := q.QuantizeBase(32); err == nil {
		t.Error("QuantizeBase twice: no error")
	}
	deq, err := q.baseParams()
	if err != nil {
		t.Fatal(err)
	}
	// The dequantized targeted weights are the NF4 round trip of p's.
	for li := range deq.Layers {
		for k := 0; k < numProj; k++ {
			in, out := projDims(c, k)
			nf, _ := QuantizeNF4(*p.Layers[li].projWeight(k), []int{out, in}, 32)
			want := make([]float32, in*out)
			nf.Dequantize(want)
			if d := maxAbsDiff(*deq.Layers[li].projWeight(k), want); d != 0 {
				t.Fatalf("%s: dequantized weight differs by %g", projModule(li, k), d)
			}
		}
	}
	l := newModel(t, deq, 2, 9)
	if err := l.EnableLoRA(cfg); err != nil {
		t.Fatal(err)
	}
	copy(l.lora.data, q.lora.data)
	lq, ll := step(t, q, x), step(t, l, x)
	if lq != ll || maxAbsDiff(q.Logits(), l.Logits()) != 0 || maxAbsDiff(q.lora.grad, l.lora.grad) != 0 {
		t.Errorf("QLoRA differs from LoRA on dequantized weights: loss %v vs %v, logits %g, grads %g",
			lq, ll, maxAbsDiff(q.Logits(), l.Logits()), maxAbsDiff(q.lora.grad, l.lora.grad))
	}
	t.Logf("footprint before %+v (%d B), after %+v (%d B)", before, before.Total(), after, after.Total())
	if after.Grads != 0 || after.Quantized == 0 || after.Weights >= before.Weights {
		t.Errorf("footprint after QuantizeBase: %+v", after)
	}
}

// TestQLoRAMemory quantizes the benchmark model (dim 256, 4 layers,
// vocab 4096) and checks, through the Go heap, that the float32 copies
// of the projections and the base gradients are really freed.
func TestQLoRAMemory(t *testing.T) {
	c := DefaultConfig()
	c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers = 256, 704, 4
	c.NumAttentionHeads, c.VocabSize, c.TieWordEmbeddings = 4, 4096, true
	heap := func() int64 {
		var s runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&s)
		return int64(s.HeapAlloc)
	}
	m := func() *Model { // p is referenced by the model only
		p, err := NewParams(c)
		if err != nil {
			t.Fatal(err)
		}
		p.Init(1, 0.02)
		return newModel(t, p, 1, 8)
	}()
	if err := m.EnableLoRA(LoRAConfig{Rank: 8, Alpha: 16}); err != nil {
		t.Fatal(err)
	}
	full := m.Footprint()
	h0 := heap()
	if err := m.QuantizeBase(64); err != nil {
		t.Fatal(err)
	}
	q := m.Footprint()
	h1 := heap()
	t.Logf("LoRA, float32 base: %+v = %.2f MB", full, float64(full.Total())/1e6)
	t.Logf("QLoRA, NF4 base:    %+v = %.2f MB", q, float64(q.Total())/1e6)
	t.Logf("heap %.2f MB → %.2f MB (freed %.2f MB; footprint says %.2f MB)",
		float64(h0)/1e6, float64(h1)/1e6, float64(h0-h1)/1e6, float64(full.Total()-q.Total())/1e6)
	projections := int64(4 * c.NumHiddenLayers * (4*256*256 + 3*256*704))
	if full.Weights-q.Weights != projections {
		t.Errorf("float32 weights shrank by %d B, want the projections' %d B", full.Weights-q.Weights, projections)
	}
	if bits := float64(q.Quantized) * 8 / float64(projections/4); bits > 4.51 {
		t.Errorf("NF4 storage %.2f bits per value, want 4.5", bits)
	}
	if freed, want := h0-h1, full.Total()-q.Total(); float64(freed) < 0.9*float64(want) {
		t.Errorf("heap shrank by %d B, footprint by %d B: float32 storage kept alive", freed, want)
	}
	runtime.KeepAlive(m)
}

// TestAdapterRoundTrip: SaveAdapter writes PEFT's layout, LoadAdapter
// reads it back exactly, into a new model or one with LoRA enabled.
func TestAdapterRoundTrip(t *testing.T) {
	c := tinyConfigs()["tied-mqa-hd6"]
	p := randomParams(t, c, 12)
	x := tinyBatch(c.VocabSize)
	m := newModel(t, p, 2, 9)
	cfg := LoRAConfig{Rank: 3, Alpha: 7.5, RSLoRA: true, Targets: []string{"down_proj", "q_proj", "v_proj"}, Seed: 2}
	if err := m.EnableLoRA(cfg); err != nil {
		t.Fatal(err)
	}
	randomizeB(m, 8, 0.3)
	m.Forward(x)
	want := append([]float32(nil), m.Logits()...)
	dir := filepath.Join(t.TempDir(), "adapter")
	if err := m.SaveAdapter(dir, "sieve/tiny"); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(filepath.Join(dir, "adapter_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var js map[string]any
	if err := json.Unmarshal(data, &js); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]any{
		"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 3.0, "lora_alpha": 7.5, "lora_dropout": 0.0,
		"bias": "none", "fan_in_fan_out": false, "use_rslora": true, "base_model_name_or_path": "sieve/tiny",
		"inference_mode": true,
	} {
		if js[k] != v {
			t.Errorf("adapter_config.json: %s = %v, want %v", k, js[k], v)
		}
	}
	if tm, _ := json.Marshal(js["target_modules"]); string(tm) != `["q_proj","v_proj","down_proj"]` {
		t.Errorf("target_modules %s", tm)
	}
	st, err := OpenSafetensors(filepath.Join(dir, "adapter_model.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if dt, shape, ok := st.Info("base_model.model.model.layers.1.mlp.down_proj.lora_A.weight"); !ok || dt != F32 || !equalShape(shape, []int{3, c.IntermediateSize}) {
		t.Errorf("down_proj lora_A: %v %v %v", ok, dt, shape)
	}
	if _, shape, ok := st.Info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight"); !ok || !equalShape(shape, []int{c.KVHeads() * c.Hd(), 3}) {
		t.Errorf("v_proj lora_B: %v %v", ok, shape)
	}
	if n := len(st.Names()); n != 2*3*c.NumHiddenLayers {
		t.Errorf("%d tensors in the adapter file", n)
	}
	st.Close()

	check := func(what string, m2 *Model) {
		t.Helper()
		got, _ := m2.LoRA()
		if got.Rank != 3 || got.Alpha != 7.5 || !got.RSLoRA || strings.Join(got.Targets, ",") != "q_proj,v_proj,down_proj" {
			t.Errorf("%s: config %+v", what, got)
		}
		if d := maxAbsDiff(m2.lora.data, m.lora.data); d != 0 {
			t.Errorf("%s: adapter weights differ by %g", what, d)
		}
		m2.Forward(x)
		if d := maxAbsDiff(m2.Logits(), want); d != 0 {
			t.Errorf("%s: logits differ by %g", what, d)
		}
	}
	fresh := newModel(t, p, 2, 9)
	if err := fresh.LoadAdapter(dir); err != nil {
		t.Fatal(err)
	}
	check("into a plain model", fresh)

	enabled := newModel(t, p, 2, 9)
	enabled.EnableLoRA(LoRAConfig{Rank: 3, Alpha: 1, Targets: []string{"q_proj", "v_proj", "down_proj"}})
	if err := enabled.QuantizeBase(16); err != nil {
		t.Fatal(err)
	}
	if err := enabled.LoadAdapter(dir); err != nil {
		t.Fatal(err)
	}
	if got, _ := enabled.LoRA(); got.Alpha != 7.5 || !got.RSLoRA || enabled.lora.scale != float32(7.5/math.Sqrt(3)) {
		t.Errorf("LoadAdapter into enabled LoRA kept config %+v", got)
	}

	// Mismatches and unsupported configurations are errors.
	wrong := newModel(t, p, 2, 9)
	wrong.EnableLoRA(LoRAConfig{Rank: 2, Targets: []string{"q_proj", "v_proj", "down_proj"}})
	if err := wrong.LoadAdapter(dir); err == nil {
		t.Error("rank mismatch: no error")
	}
	edit := func(key string, val any) string {
		d := t.TempDir()
		os.MkdirAll(d, 0o755)
		raw, _ := os.ReadFile(filepath.Join(dir, "adapter_model.safetensors"))
		os.WriteFile(filepath.Join(d, "adapter_model.safetensors"), raw, 0o644)
		js2 := map[string]any{}
		json.Unmarshal(data, &js2)
		js2[key] = val
		b, _ := json.Marshal(js2)
		os.WriteFile(filepath.Join(d, "adapter_config.json"), b, 0o644)
		return d
	}
	for _, kv := range []struct {
		key string
		val any
	}{
		{"use_dora", true}, {"bias", "all"}, {"peft_type", "IA3"}, {"target_modules", []string{"q_proj"}},
		{"target_modules", []string{"model.layers.0.self_attn.q_proj", "v_proj", "down_proj"}},
		{"target_modules", []string{"q_proj", "v_proj", "down_proj", "lm_head"}},
		{"rank_pattern", map[string]int{"q_proj": 2}}, {"layers_to_transform", []int{0}},
		{"modules_to_save", []string{"lm_head"}}, {"alora_invocation_tokens", []int{1, 2}}, {"r", 0},
	} {
		if err := newModel(t, p, 2, 9).LoadAdapter(edit(kv.key, kv.val)); err == nil {
			t.Errorf("%s = %v: no error", kv.key, kv.val)
		} else {
			t.Logf("%s = %v: %v", kv.key, kv.val, err)
		}
	}
	for _, tm := range []any{"all-linear", ".*(q_proj|v_proj|down_proj)$", []string{"v_proj", "down_proj", "q_proj"},
		[]string{"self_attn.q_proj", "mlp.down_proj", "v_proj"}} {
		if err := newModel(t, p, 2, 9).LoadAdapter(edit("target_modules", tm)); err != nil {
			t.Errorf("target_modules %v: %v", tm, err)
		}
	}
}

// TestLoRAConfigErrors: bad configurations are refused.
func TestLoRAConfigErrors(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	for _, cfg := range []LoRAConfig{{Rank: 0}, {Rank: 2, Alpha: -1}, {Rank: 2, Alpha: math.NaN()}, {Rank: 2, Targets: []string{"lm_head"}}} {
		if err := newModel(t, randomParams(t, c, 1), 1, 4).EnableLoRA(cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	m := newModel(t, randomParams(t, c, 1), 1, 4)
	if err := m.QuantizeBase(64); err == nil {
		t.Error("QuantizeBase without LoRA: no error")
	}
	if err := m.SaveAdapter(t.TempDir(), ""); err == nil {
		t.Error("SaveAdapter without LoRA: no error")
	}
	if err := m.EnableLoRA(LoRAConfig{Rank: 2}); err != nil {
		t.Fatal(err)
	}
	if err := m.EnableLoRA(LoRAConfig{Rank: 2}); err == nil {
		t.Error("EnableLoRA twice: no error")
	}
	if err := m.QuantizeBase(63); err == nil {
		t.Error("odd block size: no error")
	}
	if got, _ := m.LoRA(); got.Alpha != 2 || len(got.Targets) != numProj {
		t.Errorf("defaults: %+v", got)
	}
}

// TestLoRAAllocations: a LoRA training step, float32 or NF4 base,
// allocates no buffer.
func TestLoRAAllocations(t *testing.T) {
	g := loadGolden(t, "untied")
	for _, quantize := range []bool{false, true} {
		p, _ := NewParams(g.cfg)
		p.CopyFrom(g.p)
		m := newModel(t, p, g.x.B, g.x.T)
		m.EnableLoRA(LoRAConfig{Rank: 8})
		if quantize {
			m.QuantizeBase(0)
		}
		run := func() {
			m.Forward(g.x)
			m.ZeroGrad()
			m.Backward()
		}
		run()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		const runs = 10
		for i := 0; i < runs; i++ {
			run()
		}
		runtime.ReadMemStats(&after)
		bytes := float64(after.TotalAlloc-before.TotalAlloc) / runs
		t.Logf("quantized %v: %.0f bytes per step", quantize, bytes)
		if bytes > 64<<10 {
			t.Errorf("quantized %v: %.0f bytes allocated per step", quantize, bytes)
		}
	}
}

// PEFT parity. testdata/peft/ holds two sieve adapters for the base
// checkpoint testdata/hf_untied (written by TestWritePEFTFixtures), a
// batch, and what testdata/peft_parity.py computed with transformers and
// peft on the GPU machine: PEFT's loss, logits and lora_A/lora_B
// gradients for each sieve adapter (peft_golden.safetensors), and an
// adapter PEFT created and saved itself (peft_own/) with its logits.

var peftCases = []struct {
	name string
	cfg  LoRAConfig
}{
	{"sieve_all", LoRAConfig{Rank: 4, Alpha: 8, Seed: 21}},
	{"sieve_rslora", LoRAConfig{Rank: 2, Alpha: 3, RSLoRA: true, Targets: []string{"q_proj", "v_proj", "down_proj"}, Seed: 22}},
}

// peftBatch is the parity batch: two plain causal rows (no packing, so
// that transformers runs them without an attention mask) with some
// tokens left out of the loss.
func peftBatch(V int) *Batch {
	r := rand.New(rand.NewPCG(31, 32))
	x := NewBatch(2, 16)
	for row := 0; row < 2; row++ {
		ids := make([]int, 16)
		mask := make([]bool, 16)
		for i := range ids {
			ids[i] = r.IntN(V)
			mask[i] = row == 0 || i >= 5
		}
		must(x.SetRow(row, Sample{IDs: ids, LossMask: mask}))
	}
	x.Seg, x.Pos = nil, nil // plain causal rows
	return x
}

func batchTensors(x *Batch) []NamedTensor {
	f := func(v []int) []float32 {
		out := make([]float32, len(v))
		for i, a := range v {
			out[i] = float32(a)
		}
		return out
	}
	mask := make([]int, len(x.IDs))
	for i := range mask {
		if x.counted(i) {
			mask[i] = 1
		}
	}
	shape := []int{x.B, x.T}
	return []NamedTensor{
		{Name: "ids", Shape: shape, Data: f(x.IDs)},
		{Name: "targets", Shape: shape, Data: f(x.Targets)},
		{Name: "mask", Shape: shape, Data: f(mask)},
	}
}

// TestWritePEFTFixtures writes testdata/peft/{batch.safetensors,
// sieve_all/, sieve_rslora/} for peft_parity.py. Run with
// SIEVE_WRITE_PEFT_FIXTURES=1.
func TestWritePEFTFixtures(t *testing.T) {
	if os.Getenv("SIEVE_WRITE_PEFT_FIXTURES") == "" {
		t.Skip("set SIEVE_WRITE_PEFT_FIXTURES=1 to write testdata/peft/")
	}
	p, err := Load(filepath.Join("testdata", "hf_untied"))
	if err != nil {
		t.Fatal(err)
	}
	x := peftBatch(p.Config.VocabSize)
	dir := filepath.Join("testdata", "peft")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := WriteSafetensors(filepath.Join(dir, "batch.safetensors"), batchTensors(x), F32, nil); err != nil {
		t.Fatal(err)
	}
	for i, pc := range peftCases {
		m := newModel(t, p, x.B, x.T)
		if err := m.EnableLoRA(pc.cfg); err != nil {
			t.Fatal(err)
		}
		randomizeB(m, uint64(40+i), 0.1)
		if err := m.SaveAdapter(filepath.Join(dir, pc.name), "testdata/hf_untied"); err != nil {
			t.Fatal(err)
		}
	}
}

func readBatch(t *testing.T, path string) *Batch {
	st, err := OpenSafetensors(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ints := func(name string) ([]int, []int) {
		v, shape, err := st.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]int, len(v))
		for i, f := range v {
			out[i] = int(f)
		}
		return out, shape
	}
	ids, shape := ints("ids")
	tg, _ := ints("targets")
	mk, _ := ints("mask")
	x := &Batch{B: shape[0], T: shape[1], IDs: ids, Targets: tg, Mask: make([]bool, len(mk))}
	for i, v := range mk {
		x.Mask[i] = v != 0
	}
	return x
}

// TestPEFTParity loads the sieve adapters onto the base and compares
// loss, logits and every lora_A/lora_B gradient with PEFT's (float32
// within 1e-4 of the largest value, as TestPyTorchParity; the error
// against PEFT in float64 is logged), and loads the adapter PEFT saved
// itself and compares the logits.
func TestPEFTParity(t *testing.T) {
	dir := filepath.Join("testdata", "peft")
	st, err := OpenSafetensors(filepath.Join(dir, "peft_golden.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	t.Logf("golden from %s", st.Metadata["versions"])
	read := func(name string) []float32 {
		v, _, err := st.Read(name)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	p, err := Load(filepath.Join("testdata", "hf_untied"))
	if err != nil {
		t.Fatal(err)
	}
	x := readBatch(t, filepath.Join(dir, "batch.safetensors"))
	if want := peftBatch(p.Config.VocabSize); maxAbsDiff(batchTensors(want)[0].Data, batchTensors(x)[0].Data) != 0 {
		t.Fatal("testdata/peft/batch.safetensors is not peftBatch: rerun TestWritePEFTFixtures and peft_parity.py")
	}
	var worst32, worst64 relErr
	upd := func(w *relErr, e relErr) { w.norm, w.elem = math.Max(w.norm, e.norm), math.Max(w.elem, e.elem) }
	for _, pc := range peftCases {
		m := newModel(t, p, x.B, x.T)
		if err := m.LoadAdapter(filepath.Join(dir, pc.name)); err != nil {
			t.Fatal(err)
		}
		cfg, _ := m.LoRA()
		if s := read(pc.name + ".scaling")[0]; math.Abs(float64(s)-cfg.Scaling()) > 1e-6 {
			t.Errorf("%s: PEFT scaling %g, sieve %g", pc.name, s, cfg.Scaling())
		}
		loss := step(t, m, x)
		for _, suf := range []string{"", "64"} {
			want := float64(read(pc.name + ".loss" + suf)[0])
			if d := math.Abs(float64(loss)-want) / want; d > 1e-5 {
				t.Errorf("%s: loss %.7f, PEFT%s %.7f (rel %.1e)", pc.name, loss, suf, want, d)
			} else {
				t.Logf("%s: loss %.7f, PEFT%s %.7f (rel %.1e)", pc.name, loss, suf, want, d)
			}
		}
		cmp := func(what string, got []float32, ref string) relErr {
			e := compareGrad(got, to64(read(ref)))
			if e.norm > 1e-4 || math.IsNaN(e.norm) {
				t.Errorf("%s %s vs %s: error %s", pc.name, what, ref, e)
			}
			return e
		}
		t.Logf("%s: logits vs PEFT f32 %s; vs f64 %s", pc.name,
			cmp("logits", m.Logits(), pc.name+".logits"), cmp("logits", m.Logits(), pc.name+".logits64"))
		for _, tt := range m.Trainable() {
			e32 := cmp(tt.Name, tt.G, pc.name+".grad."+tt.Name)
			e64 := cmp(tt.Name, tt.G, pc.name+".grad64."+tt.Name)
			upd(&worst32, e32)
			upd(&worst64, e64)
		}
		if n := len(m.Trainable()); n != 2*len(cfg.Targets)*p.Config.NumHiddenLayers {
			t.Errorf("%s: %d adapter tensors", pc.name, n)
		}
	}
	t.Logf("worst adapter gradient error: vs PEFT f32 %s; vs PEFT f64 %s", worst32, worst64)

	// The adapter PEFT saved (target_modules all-linear, rsLoRA, random lora_B).
	m := newModel(t, p, x.B, x.T)
	if err := m.LoadAdapter(filepath.Join(dir, "peft_own")); err != nil {
		t.Fatal(err)
	}
	cfg, _ := m.LoRA()
	t.Logf("peft_own: %+v", cfg)
	if len(cfg.Targets) != numProj || !cfg.RSLoRA {
		t.Errorf("peft_own config %+v", cfg)
	}
	loss, _ := m.Forward(x)
	for _, suf := range []string{"", "64"} {
		e := compareGrad(m.Logits(), to64(read("peft_own.logits"+suf)))
		want := float64(read("peft_own.loss" + suf)[0])
		t.Logf("peft_own: logits vs PEFT%s %s; loss %.7f vs %.7f", suf, e, loss, want)
		if e.norm > 1e-4 || math.Abs(float64(loss)-want) > 1e-5*want {
			t.Errorf("peft_own: logits vs PEFT%s %s, loss %v vs %v", suf, e, loss, want)
		}
	}
}

// benchMode sets BenchmarkTrainStep up for MODE (environment): full
// (default), lora (LoRA of rank LORA_R, default 8, alpha LORA_ALPHA,
// default 16, on all seven projections, as torch_tiny_llama.py
// MODE=lora) or qlora (the same on an NF4 base). It returns the suffix
// of the benchmark's name, the PyTorch CPU baseline in tokens/s
// (GUIDE.md: full 3,000, LoRA 3,400; QLoRA is compared with LoRA) and
// the number of trainable parameters.
func benchMode(b *testing.B, m *Model) (suffix string, baseline float64, trainable int) {
	mode := os.Getenv("MODE")
	switch mode {
	case "", "full":
		return "", 3000, m.P.NumParams()
	case "lora", "qlora":
	default:
		b.Fatalf("MODE %q: want full, lora or qlora", mode)
	}
	cfg := LoRAConfig{Rank: benchEnv("LORA_R", 8), Alpha: float64(benchEnv("LORA_ALPHA", 16))}
	if err := m.EnableLoRA(cfg); err != nil {
		b.Fatal(err)
	}
	if mode == "qlora" {
		if err := m.QuantizeBase(0); err != nil {
			b.Fatal(err)
		}
	}
	for _, t := range m.Trainable() {
		trainable += len(t.P)
	}
	f := m.Footprint()
	b.Logf("MODE=%s r=%d alpha=%g: %d trainable parameters; footprint %+v = %.2f MB", mode, cfg.Rank, cfg.Alpha, trainable, f, float64(f.Total())/1e6)
	return "_" + mode, 3400, trainable
}
