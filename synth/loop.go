package synth

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
)

// SelfInstructLoop drives SelfInstruct until Target new samples exist:
// it bootstraps as Self-Instruct does, each prompt showing SeedsPerPrompt
// examples of which up to MachinePerPrompt are instructions generated
// earlier, and keeps a new instruction only if it is novel (ROUGE-L)
// against the seeds and everything kept before it.
//
// Prompts run in rounds of up to Concurrency calls. The examples of
// prompt p depend only on Seed, p and what earlier rounds kept, and a
// round's instructions are checked for novelty in prompt order after the
// round, so the result does not depend on which call finishes first: a
// rerun through the llm cache makes the same requests and keeps the same
// samples.
type SelfInstructLoop struct {
	Task   *SelfInstruct
	Client *llm.Client
	// Seeds are the seed samples (single user turn each; others are not
	// used).
	Seeds []datasets.Sample
	// Target is how many new samples to aim for (the last round may pass
	// it); MaxPrompts caps the generation prompts (0: 10 × Target / count
	// per prompt, at least 10).
	Target, MaxPrompts int
	// SeedsPerPrompt (default 8) examples per prompt, up to
	// MachinePerPrompt (default 2) of them generated ones.
	SeedsPerPrompt, MachinePerPrompt int
	// Concurrency is how many prompts run at once (default 1).
	Concurrency int
	// Seed makes the choice of examples reproducible.
	Seed string
	// Threshold is the ROUGE-L novelty threshold (default
	// DefaultNoveltyThreshold).
	Threshold float64
}

// LoopSample is a kept sample with the prompt that made it and its
// position among that prompt's candidates.
type LoopSample struct {
	Sample        datasets.Sample
	Prompt, Index int
}

// LoopRejected is a rejected candidate, placed as LoopSample.
type LoopRejected struct {
	Rejected      datasets.Rejected
	Prompt, Index int
}

// LoopResult is what a loop made.
type LoopResult struct {
	Samples  []LoopSample
	Rejected []LoopRejected
	Prompts  int
}

// Run runs the loop. It returns an error that stops the stage (see
// judges.StopsStage) together with what it made before, or an error when
// no seed can be used.
func (l *SelfInstructLoop) Run(ctx context.Context) (LoopResult, error) {
	var res LoopResult
	spp, mpp, conc := l.SeedsPerPrompt, l.MachinePerPrompt, l.Concurrency
	if spp <= 0 {
		spp = 8
	}
	if mpp <= 0 {
		mpp = min(2, spp-1)
	}
	if conc <= 0 {
		conc = 1
	}
	per := l.Task.cfg.Count
	maxPrompts := l.MaxPrompts
	if maxPrompts <= 0 {
		maxPrompts = max(10, 10*((l.Target+per-1)/per))
	}
	var seeds []datasets.Sample
	var texts []string
	for _, s := range l.Seeds {
		if _, text, ok := instruction(s); ok {
			seeds = append(seeds, s)
			texts = append(texts, text)
		}
	}
	if len(seeds) == 0 {
		return res, fmt.Errorf("synth: self_instruct: none of %d seed samples has exactly one user turn", len(l.Seeds))
	}
	known := NewNoveltyIndex(l.Threshold, texts...)
	var machine []datasets.Sample

	type call struct {
		out []datasets.Sample
		rej []datasets.Rejected
		err error
	}
	for len(res.Samples) < l.Target && res.Prompts < maxPrompts {
		need := (l.Target - len(res.Samples) + per - 1) / per
		w := min(conc, maxPrompts-res.Prompts, max(1, need))
		calls := make([]call, w)
		inputs := make([]Input, w)
		for i := range inputs {
			inputs[i] = Input{Samples: l.examples(res.Prompts+i, seeds, machine, spp, mpp)}
		}
		var wg sync.WaitGroup
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				out, rej, err := l.Task.Generate(ctx, l.Client, inputs[i])
				calls[i] = call{out: out, rej: rej, err: err}
			}()
		}
		wg.Wait()
		var stop error
		for i, c := range calls {
			p := res.Prompts + i
			k := 0
			for _, s := range c.out {
				_, text, _ := instruction(s)
				if ok, score, near := known.TryAdd(text); !ok {
					prov, _ := ParseProvenance(s.Meta)
					r := l.Task.reject(ReasonNotNovel, fmt.Sprintf("rouge-l %.3f ≥ %.2f with %q (kept earlier in the run)", score, known.Threshold(), cut(near, 80)), prov, s.Messages...)
					res.Rejected = append(res.Rejected, LoopRejected{Rejected: r, Prompt: p, Index: k})
				} else {
					res.Samples = append(res.Samples, LoopSample{Sample: s, Prompt: p, Index: k})
					machine = append(machine, s)
				}
				k++
			}
			for _, r := range c.rej {
				res.Rejected = append(res.Rejected, LoopRejected{Rejected: r, Prompt: p, Index: k})
				k++
			}
			if c.err != nil && stop == nil {
				stop = c.err
			}
		}
		res.Prompts += w
		if stop != nil {
			if !judges.StopsStage(stop) {
				stop = fmt.Errorf("synth: self_instruct: prompt: %w", stop)
			}
			return res, stop
		}
	}
	return res, nil
}

// examples picks prompt p's examples: up to mpp generated ones (when
// there are some) and seeds for the rest, without repetition, by a
// generator seeded with the loop's seed and p.
func (l *SelfInstructLoop) examples(p int, seeds, machine []datasets.Sample, spp, mpp int) []datasets.Sample {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%d", l.Seed, p)
	r := rand.New(rand.NewPCG(h.Sum64(), uint64(p)))
	m := min(mpp, len(machine))
	out := make([]datasets.Sample, 0, spp)
	for _, i := range r.Perm(len(seeds))[:min(spp-m, len(seeds))] {
		out = append(out, seeds[i])
	}
	if m > 0 {
		for _, i := range r.Perm(len(machine))[:m] {
			out = append(out, machine[i])
		}
	}
	return out
}
