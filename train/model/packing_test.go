package model

import (
	"math"
	"testing"
)

// maxAbsDiff returns max |a−b| over the first len(a) values.
func maxAbsDiff(a, b []float32) float64 {
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// TestPacking checks that two samples packed in one row give the same
// logits and loss as the two samples run on their own, and as each run
// in a padded row; and that without segment ids they would not.
func TestPacking(t *testing.T) {
	defer func(b int) { attnBlock = b }(attnBlock)
	for _, blk := range []int{64, 2} {
		attnBlock = blk
		for name, c := range tinyConfigs() {
			p := randomParams(t, c, 11)
			m, err := New(p, 2, 9)
			if err != nil {
				t.Fatal(err)
			}
			V := c.VocabSize
			a := Sample{IDs: []int{1, 5, 9, 3, 7}, LossMask: []bool{false, false, true, true, true}}
			b := Sample{IDs: []int{2, 36, 4, 8}, LossMask: []bool{false, true, true, true}}

			run := func(x *Batch) ([]float32, float32, int) {
				t.Helper()
				l, err := m.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				_, cnt := m.Loss()
				return append([]float32(nil), m.Logits()...), l, cnt
			}
			packed := NewBatch(1, 9)
			must(packed.SetRow(0, a, b))
			lp, lossP, _ := run(packed)

			alone := func(s Sample, T int) ([]float32, float32, int) {
				x := NewBatch(1, T)
				must(x.SetRow(0, s))
				return run(x)
			}
			la, lossA, ca := alone(a, 5)
			lb, lossB, cb := alone(b, 4)
			want := (float64(lossA)*float64(ca) + float64(lossB)*float64(cb)) / float64(ca+cb)
			dA := maxAbsDiff(la, lp[:5*V])
			dB := maxAbsDiff(lb, lp[5*V:9*V])
			dL := math.Abs(float64(lossP)-want) / want
			t.Logf("%s block %d: packed vs separate: logits max diff %.1e / %.1e, loss rel diff %.1e", name, blk, dA, dB, dL)
			if dA > 1e-5 || dB > 1e-5 || dL > 1e-6 {
				t.Errorf("%s: packed and separate samples differ: logits %g %g, loss %g vs %g", name, dA, dB, lossP, want)
			}

			// Padding: each sample in a padded row of 9, in a batch of 2.
			padded := NewBatch(2, 9)
			must(padded.SetRow(0, b))
			must(padded.SetRow(1, a))
			lpad, lossPad, _ := run(padded)
			dA, dB = maxAbsDiff(la, lpad[9*V:14*V]), maxAbsDiff(lb, lpad[:4*V])
			dL = math.Abs(float64(lossPad)-want) / want
			if dA > 1e-5 || dB > 1e-5 || dL > 1e-6 {
				t.Errorf("%s: padded and separate samples differ: logits %g %g, loss %g vs %g", name, dA, dB, lossPad, want)
			}

			// Without segments and positions the second sample sees the first.
			leaky := NewBatch(1, 9)
			must(leaky.SetRow(0, a, b))
			leaky.Seg, leaky.Pos = nil, nil
			ll, _, _ := run(leaky)
			if d := maxAbsDiff(lb, ll[5*V:9*V]); d < 1e-3 {
				t.Errorf("%s: the packing test cannot see cross-sample attention (diff %g)", name, d)
			}
		}
	}
}

// TestGradAccumulation checks that Backward adds into G and that
// BackwardScaled scales: two micro-batches with scales cᵢ/Σc give the
// gradient of the mean over both.
func TestGradAccumulation(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	p := randomParams(t, c, 3)
	m, err := New(p, 2, 9)
	if err != nil {
		t.Fatal(err)
	}
	x := tinyBatch(c.VocabSize)
	m.Forward(x)
	m.Backward()
	full := append([]float32(nil), m.G.Data...)

	m.ZeroGrad()
	rows := [2]*Batch{}
	counts := [2]int{}
	for r := range rows {
		rows[r] = &Batch{B: 1, T: 9, IDs: x.IDs[r*9 : r*9+9], Pos: x.Pos[r*9 : r*9+9], Seg: x.Seg[r*9 : r*9+9],
			Targets: x.Targets[r*9 : r*9+9], Mask: x.Mask[r*9 : r*9+9]}
		for i := 0; i < 9; i++ {
			if rows[r].counted(i) {
				counts[r]++
			}
		}
	}
	for r, xb := range rows {
		m.Forward(xb)
		m.BackwardScaled(float32(counts[r]) / float32(counts[0]+counts[1]))
	}
	var mx float64
	for _, v := range full {
		mx = math.Max(mx, math.Abs(float64(v)))
	}
	if d := maxAbsDiff(full, m.G.Data); d > 1e-6*mx {
		t.Errorf("accumulated gradient differs from the full batch's by %g (max %g)", d, mx)
	}
}

func TestBatchErrors(t *testing.T) {
	c := tinyConfigs()["untied-gqa"]
	p := randomParams(t, c, 3)
	m, _ := New(p, 2, 9)
	x := NewBatch(2, 9)
	if err := x.SetRow(0, Sample{IDs: make([]int, 10)}); err == nil {
		t.Error("SetRow accepted 10 tokens in a row of 9")
	}
	x.IDs[3] = c.VocabSize
	if _, err := m.Forward(x); err == nil {
		t.Error("Forward accepted an id ≥ vocab_size")
	}
	if _, err := m.Forward(NewBatch(3, 9)); err == nil {
		t.Error("Forward accepted a batch larger than the workspace")
	}
	var zero Model
	if err := zero.Backward(); err == nil {
		t.Error("Backward without Forward gave no error")
	}
	// No counted token: loss 0, zero gradients.
	y := NewBatch(1, 9)
	must(y.SetRow(0, Sample{IDs: []int{1, 2, 3}, LossMask: []bool{true, false, false}}))
	m.ZeroGrad()
	if l, err := m.Forward(y); err != nil || l != 0 {
		t.Errorf("loss %g, err %v; want 0, nil", l, err)
	}
	m.Backward()
	if n := m.G.Norm2(); n != 0 {
		t.Errorf("gradient norm %g with no counted token", n)
	}
}
