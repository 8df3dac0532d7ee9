package train

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/sieve-data/sieve/train/model"
)

type goldenStep struct {
	Grads    [][]float64 `json:"grads"`
	LR       float64     `json:"lr"`
	GradNorm float64     `json:"grad_norm"`
	Params   [][]float64 `json:"params"`
	ExpAvg   [][]float64 `json:"exp_avg"`
	ExpAvgSq [][]float64 `json:"exp_avg_sq"`
}

type goldenCase struct {
	Name        string       `json:"name"`
	Shapes      [][]int      `json:"shapes"`
	LR          float64      `json:"lr"`
	Beta1       float64      `json:"beta1"`
	Beta2       float64      `json:"beta2"`
	Eps         float64      `json:"eps"`
	WeightDecay float64      `json:"weight_decay"`
	Warmup      int          `json:"warmup"`
	Total       int          `json:"total"`
	MinLRRatio  float64      `json:"min_lr_ratio"`
	MaxGradNorm float64      `json:"max_grad_norm"`
	Init        [][]float64  `json:"init"`
	Steps       []goldenStep `json:"steps"`
}

type golden struct {
	Torch     string       `json:"torch"`
	Cases     []goldenCase `json:"cases"`
	Schedules []struct {
		Warmup     int       `json:"warmup"`
		Total      int       `json:"total"`
		MinLRRatio float64   `json:"min_lr_ratio"`
		Factors    []float64 `json:"factors"`
	} `json:"schedules"`
}

func readGolden(t *testing.T) golden {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "optim_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g golden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

func f32s(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// relErr is |got − want| / max(|want|, scale): relative, with a floor
// (the RMS of the tensor the value belongs to, or 1e-3) for values near
// zero.
func relErr(got, want, scale float64) float64 {
	return math.Abs(got-want) / math.Max(math.Abs(want), math.Max(scale, 1e-3))
}

func rms(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	return math.Sqrt(s / float64(max(1, len(v))))
}

// TestOptimizerMatchesTorch replays testdata/optim_golden.json (written
// by optim_golden.py with PyTorch): clip_grad_norm_, AdamW.step and the
// cosine schedule with warmup, step by step, within 1e-6 relative. The
// gradient norm differs from torch's in the last float32 bit (torch sums
// squares in float32 lanes, this package in float64), and a moment that
// nearly cancels (β₁·m ≈ −(1 − β₁)·g) magnifies that bit; so the
// relative error of a value smaller than its tensor's RMS is taken
// against the RMS.
func TestOptimizerMatchesTorch(t *testing.T) {
	g := readGolden(t)
	if len(g.Cases) == 0 {
		t.Fatal("no cases")
	}
	const tol = 1e-6
	for _, c := range g.Cases {
		t.Run(c.Name, func(t *testing.T) {
			params := make([]model.TrainableTensor, len(c.Init))
			for i, p := range c.Init {
				name := "w" + string(rune('0'+i))
				if len(c.Shapes[i]) == 1 {
					name += ".norm.weight" // 1-D: no decay
				}
				params[i] = model.TrainableTensor{Name: name, P: f32s(p), G: make([]float32, len(p))}
			}
			opt := NewAdamW(params, NoDecay, c.Beta1, c.Beta2, c.Eps, c.WeightDecay)
			sched := CosineSchedule{Peak: c.LR, Warmup: c.Warmup, Total: c.Total, MinLRRatio: c.MinLRRatio}
			worst := 0.0
			for s, st := range c.Steps {
				for i := range params {
					copy(params[i].G, f32s(st.Grads[i]))
				}
				lr := sched.LR(s)
				if e := relErr(lr, st.LR, 0); e > 1e-12 {
					t.Fatalf("step %d: lr %g, torch %g", s, lr, st.LR)
				}
				var norm float64
				if c.MaxGradNorm > 0 {
					norm = ClipGradNorm(params, c.MaxGradNorm)
				} else {
					norm = GradNorm(params)
				}
				if e := relErr(norm, st.GradNorm, 0); e > tol {
					t.Fatalf("step %d: grad norm %g, torch %g", s, norm, st.GradNorm)
				}
				opt.Update(lr)
				for i, p := range params {
					for j := range p.P {
						for _, cmp := range []struct {
							what             string
							got, want, scale float64
						}{
							{"param", float64(p.P[j]), st.Params[i][j], rms(st.Params[i])},
							{"exp_avg", float64(opt.m[i][j]), st.ExpAvg[i][j], rms(st.ExpAvg[i])},
							{"exp_avg_sq", float64(opt.v[i][j]), st.ExpAvgSq[i][j], rms(st.ExpAvgSq[i])},
						} {
							e := relErr(cmp.got, cmp.want, cmp.scale)
							worst = max(worst, e)
							if e > tol {
								t.Fatalf("step %d tensor %d [%d] %s: %.9g, torch %.9g (rel %.2g)", s, i, j, cmp.what, cmp.got, cmp.want, e)
							}
						}
					}
				}
			}
			t.Logf("%d steps, worst relative error %.2g (torch %s)", len(c.Steps), worst, g.Torch)
		})
	}
}

func TestCosineScheduleMatchesTransformers(t *testing.T) {
	g := readGolden(t)
	for _, sc := range g.Schedules {
		s := CosineSchedule{Peak: 2, Warmup: sc.Warmup, Total: sc.Total, MinLRRatio: sc.MinLRRatio}
		for step, f := range sc.Factors {
			if got := s.LR(step) / 2; math.Abs(got-f) > 1e-15 {
				t.Errorf("warmup %d total %d min %g step %d: factor %g, want %g", sc.Warmup, sc.Total, sc.MinLRRatio, step, got, f)
			}
		}
	}
}
