package pipelines

import (
	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/sieve-data/sieve/transforms"
)

// pendingTail owns what Build has not yet applied to the samples. Per-sample
// stages before the first whole-dataset stage run at once; from the first
// whole-dataset stage (dedup, mix) on, those stages only mark what they
// drop, deciding over small keys, and the marks and every later
// per-sample step wait, in recipe order (the tail), for the shard writers,
// so samples are shuffled once. A generation or topics stage, which must
// see the samples as the stages before it left them, flushes the tail
// first; so does a whole-dataset stage after a pending step that calls an
// LLM (a judge), which would otherwise be re-run inside that stage's
// keying and again at the writers.
//
// Sample bodies are spilled into sorted runs at the first whole-dataset
// stage (or at the writers): from there on the runner shuffles only keys
// and run paths (see transforms.Spill).
type pendingTail struct {
	s     beam.Scope
	write transforms.WriteConfig
	spill transforms.SpillConfig
	// samples are the samples as the applied stages left them; runs,
	// once valid, the same samples spilled.
	samples, runs beam.PCollection
	// marks are the pending whole-dataset stages' marks, steps the
	// pending per-sample steps, tail both in recipe order.
	marks []transforms.StageMarks
	steps []transforms.StepSpec
	tail  []transforms.TailStep
	// rejected and reports collect what applied stages dropped and
	// reported, for the rejected file and the run report.
	rejected, reports []beam.PCollection
}

// report adds a stage's report lines (counts, checks) to the run report.
func (t *pendingTail) report(reps beam.PCollection) { t.reports = append(t.reports, reps) }

// applied records a stage that has been applied to the samples: what it
// kept, dropped and reported.
func (t *pendingTail) applied(kept, dropped, reps beam.PCollection) {
	t.samples = kept
	t.rejected = append(t.rejected, dropped)
	t.report(reps)
}

// step adds a per-sample step: applied at once while no whole-dataset
// stage is pending, else pending until the writers (or a flush).
func (t *pendingTail) step(spec transforms.StepSpec) {
	if len(t.marks) == 0 {
		t.applied(transforms.ApplySteps(t.s, t.samples, []transforms.StepSpec{spec}))
		return
	}
	t.tail = append(t.tail, transforms.TailStep{Step: &spec})
	t.steps = append(t.steps, spec)
}

// mark adds a whole-dataset stage's marks: the samples it drops.
func (t *pendingTail) mark(m transforms.StageMarks) {
	t.marks = append(t.marks, m)
	t.tail = append(t.tail, transforms.TailStep{Marks: &transforms.MarkStage{Stage: m.Stage, Reason: m.Reason, Detail: m.Detail}})
}

// live is what a whole-dataset stage keys on: the samples themselves
// while nothing is pending, else the runs read back with the marks and
// pending steps applied (quietly: the writers' run of the steps is the
// one that counts). Pending steps that call an LLM are applied once here
// instead (flush).
func (t *pendingTail) live() beam.PCollection {
	if t.pendingLLM() {
		t.flush()
	}
	if !t.runs.IsValid() {
		t.runs = transforms.Spill(t.s, t.samples, t.write, t.spill)
	}
	if len(t.marks) == 0 && len(t.steps) == 0 {
		return t.samples
	}
	return transforms.Unspill(t.s, t.runs, t.marks, t.steps)
}

// pendingLLM reports whether a pending step calls an LLM.
func (t *pendingTail) pendingLLM() bool {
	for _, sp := range t.steps {
		if transforms.CallsLLM(sp) {
			return true
		}
	}
	return false
}

// flush applies everything pending and returns the samples as the
// stages so far left them.
func (t *pendingTail) flush() beam.PCollection {
	if t.runs.IsValid() {
		t.samples, t.runs = transforms.Unspill(t.s, t.runs, nil, nil), beam.PCollection{}
	}
	if len(t.tail) > 0 {
		t.applied(transforms.ApplyTail(t.s, t.samples, t.tail, t.marks))
		t.tail, t.steps, t.marks = nil, nil, nil
	}
	return t.samples
}

// writeShards hands the writers the samples and everything pending, and
// writes the shards and the rejected samples; it returns the shards' and
// the rejected file's report lines.
func (t *pendingTail) writeShards(dir string) (shards, rejected beam.PCollection) {
	cfg := t.write
	cfg.Tail = t.tail
	if !t.runs.IsValid() {
		t.runs = transforms.Spill(t.s, t.samples, cfg, t.spill)
	}
	shards, rejectedRuns := transforms.WriteSpilled(t.s, t.runs, cfg, t.spill, t.marks)
	return shards, transforms.WriteRejected(t.s, t.rejected, rejectedRuns, dir, t.spill)
}
