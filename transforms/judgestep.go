package transforms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
)

// JudgeConfig is the judge step: an LLM judge scoring each sample on a
// rubric through an OpenAI-compatible endpoint (or the heuristic judge,
// which needs none), annotating the sample (JudgeScore, Judge) and
// dropping those below the threshold.
type JudgeConfig struct {
	Heuristic bool                   `json:"heuristic,omitempty"`
	Endpoint  llm.Endpoint           `json:"endpoint"`
	Rubric    string                 `json:"rubric"`
	Options   judges.LLMOptions      `json:"options"`
	Threshold judges.ThresholdConfig `json:"threshold"`
	// CacheDir holds the content-addressed response cache, so a killed
	// run resumes without paying twice.
	CacheDir string `json:"cache_dir"`
}

func init() {
	RegisterStep("judge", func(spec StepSpec) (Step, error) {
		var cfg JudgeConfig
		if err := json.Unmarshal(spec.Config, &cfg); err != nil {
			return nil, err
		}
		st := &judgeStep{stage: spec.Stage, cfg: cfg, quiet: spec.Quiet,
			scored: beam.NewCounter(Namespace, "modified/"+spec.Stage+"/judge.scored"),
			failed: beam.NewCounter(Namespace, "modified/"+spec.Stage+"/judge.unparsed")}
		if cfg.Heuristic {
			st.judge = &judges.HeuristicJudge{}
			return st, nil
		}
		// The run's logger: retries show with --verbose.
		client, err := llm.Shared(cfg.Endpoint, llm.Options{CacheDir: cfg.CacheDir, Logger: slog.Default(),
			Ledger: budgetLedger(spec.BudgetLedger, cfg.Endpoint, cfg.CacheDir)})
		if err != nil {
			return nil, err
		}
		rubric, err := judges.LoadRubric(cfg.Rubric)
		if err != nil {
			return nil, err
		}
		j, err := judges.NewLLMJudge(client, rubric, cfg.Options)
		if err != nil {
			return nil, err
		}
		st.judge, st.client = j, client
		return st, nil
	})
}

type judgeStep struct {
	stage          string
	cfg            JudgeConfig
	judge          judges.Judge
	client         *llm.Client // nil for the heuristic judge
	scored, failed beam.Counter
	quiet          bool // counts nothing (StepSpec.Quiet)
	mu             sync.Mutex
	stop           error
	// counts since the last report: "stopped" (samples passed unjudged
	// after the stop), CountCallsOK and CountCallsFailed (verdicts).
	counts map[string]int64
	// failure is the first failed verdict's error since the last report.
	failure string
}

// count adds one to a count (unless the step is quiet).
func (j *judgeStep) count(key string) {
	if j.quiet {
		return
	}
	j.mu.Lock()
	if j.counts == nil {
		j.counts = map[string]int64{}
	}
	j.counts[key]++
	j.mu.Unlock()
}

// StageReport returns the step's "generated" report line since the last
// one: what passed unjudged after a stop, the verdicts made and failed,
// and why the stage stopped (Detail).
func (j *judgeStep) StageReport() (Report, bool) {
	if j.quiet {
		return Report{}, false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	counts, stop, failure := j.counts, j.stop, j.failure
	j.counts, j.failure = nil, ""
	if len(counts) == 0 && stop == nil {
		return Report{}, false
	}
	r := Report{Kind: "generated", Stage: j.stage, Counts: counts, Failure: failure}
	if stop != nil {
		r.Detail = stop.Error()
	}
	return r, true
}

// Concurrency is the endpoint's limit of requests in flight.
func (j *judgeStep) Concurrency() int {
	if j.cfg.Heuristic {
		return 1
	}
	if j.cfg.Endpoint.MaxConcurrency > 0 {
		return j.cfg.Endpoint.MaxConcurrency
	}
	return llm.DefaultMaxConcurrency
}

// KeepsIDs: judgeStep never rewrites content.
func (*judgeStep) KeepsIDs() {}

func (j *judgeStep) Apply(ctx context.Context, s *datasets.Sample) *datasets.Rejected {
	j.mu.Lock()
	stop := j.stop
	j.mu.Unlock()
	if stop != nil && !errors.Is(stop, llm.ErrBudgetExhausted) {
		// The stage stopped: the sample passes unjudged.
		j.count(countStopped)
		return nil
	}
	// After a spent budget the judge is still asked: the client answers
	// from its cache without spending, and refuses the rest at once.
	v, err := j.judge.Score(ctx, *s)
	if err != nil && judges.StopsStage(err) {
		// A spent budget or a fatal endpoint error stops judging; this
		// sample and the rest pass unchanged, and the stage is reported
		// as stopped.
		j.mu.Lock()
		if j.stop == nil {
			j.stop = err
		}
		j.mu.Unlock()
		if !errors.Is(err, llm.ErrBudgetExhausted) { // a refusal is no failed call
			j.count(CountCallsFailed)
		}
		j.count(countStopped)
		return nil
	}
	switch {
	case j.quiet:
	case err != nil:
		j.failed.Inc(ctx, 1)
		j.count(CountCallsFailed)
		j.mu.Lock()
		if j.failure == "" {
			j.failure = err.Error()
		}
		j.mu.Unlock()
	default:
		j.scored.Inc(ctx, 1)
		j.count(CountCallsOK)
	}
	judges.Annotate(s, v)
	d := judges.Decide(j.cfg.Threshold, v)
	if d.Keep {
		return nil
	}
	return &datasets.Rejected{Stage: j.stage, Reason: d.Reason, Detail: fmt.Sprintf("%s (%s)", d.Detail, v.Judge), Sample: *s}
}

// LLMClients returns the judge's client, for usage reports.
func (j *judgeStep) LLMClients() []*llm.Client {
	if j.client == nil {
		return nil
	}
	return []*llm.Client{j.client}
}
