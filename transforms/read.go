package transforms

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// ReadTask is one unit of reading: files of one source, read in order by
// one worker. A source with a record limit is one task (the limit spans
// its files); otherwise each file is its own task.
type ReadTask struct {
	Options datasets.ReadOptions `json:"options"`
	Files   []string             `json:"files"`
	// Aliases, when set, name Files in samples and reports (one each).
	Aliases []string `json:"aliases,omitempty"`
}

// Report is one line of a run's report: what a reader or writer did. The
// driver assembles the manifest from these lines.
type Report struct {
	Kind string `json:"kind"` // "input", "shard", "dead_letters", "rejected", "unconverged", "mix", "generated", "usage"

	Input *datasets.Input `json:"input,omitempty"`

	Split string                `json:"split,omitempty"`
	Shard *datasets.Shard       `json:"shard,omitempty"`
	Stats *datasets.LengthStats `json:"stats,omitempty"`
	// Sources counts a shard's rows by source.
	Sources map[string]int64 `json:"sources,omitempty"`
	Mix     *MixTarget       `json:"mix,omitempty"`
	// Stage names the stage an "unconverged" line is about.
	Stage string `json:"stage,omitempty"`

	// Detail says why a generation stage stopped.
	Detail string `json:"detail,omitempty"`
	// Failure is the error of an LLM stage's first failed call in the
	// bundle (a "generated" line), for the message of a stage whose
	// every call failed.
	Failure string `json:"failure,omitempty"`
	// Endpoint, Model and Usage: a "usage" line, what an LLM endpoint's
	// client did since its previous line.
	Endpoint string     `json:"endpoint,omitempty"`
	Model    string     `json:"model,omitempty"`
	Usage    *llm.Usage `json:"usage,omitempty"`

	// Counts by "stage/reason" (rejected), reason (dead letters) or what
	// a generation stage did ("generated").
	Counts map[string]int64 `json:"counts,omitempty"`
	Path   string           `json:"path,omitempty"`
}

func init() {
	register.DoFn4x1[context.Context, string, func(datasets.Sample), func(string), error](&readFn{})
	register.Emitter1[datasets.Sample]()
	register.Emitter1[string]()
}

// Read reads the task's files in order, decoding on workers goroutines,
// naming files by their aliases, and stopping when the task's record
// limit (which spans its files) is reached. done is called after each
// file with what it held.
func (t ReadTask) Read(ctx context.Context, workers int, emit func(datasets.Sample) error,
	dead func(datasets.DeadLetter) error, done func(datasets.FileStats) error) error {
	limit := t.Options.Limit
	for i, file := range t.Files {
		opt := t.Options
		opt.Workers = workers
		if i < len(t.Aliases) {
			opt.Alias = t.Aliases[i]
		}
		if t.Options.Limit > 0 {
			if limit <= 0 {
				break
			}
			opt.Limit = limit
		}
		st, err := datasets.ReadSamples(ctx, file, opt, emit, dead)
		if err != nil {
			return fmt.Errorf("source %s: %w", t.Options.Source, err)
		}
		limit -= st.Records
		if err := done(st); err != nil {
			return err
		}
	}
	return nil
}

// Read reads the tasks' files in parallel (one task per bundle after a
// reshuffle) and returns the samples, the dead letters (JSON-encoded
// datasets.DeadLetter) and the report lines of the inputs.
func Read(s beam.Scope, tasks []ReadTask) (samples, dead, reports beam.PCollection) {
	s = s.Scope("Read")
	elems := make([]any, len(tasks))
	for i, t := range tasks {
		b, err := json.Marshal(t)
		if err != nil {
			panic(fmt.Sprintf("transforms.Read: %v", err))
		}
		elems[i] = string(b)
	}
	col := beam.Reshuffle(s, beam.Create(s, elems...))
	samples, tagged := beam.ParDo2(s, &readFn{}, col)
	dead, reports = splitTagged(s, tagged)
	return samples, dead, reports
}

// readFn reads one ReadTask. Its second output carries tagged strings:
// "D" + dead-letter JSON or "R" + report JSON, which splitTagged
// separates (a DoFn's outputs must be declared statically, and this keeps
// the reader's signature small).
type readFn struct {
	records, deadCount beam.Counter
}

func (f *readFn) Setup() {
	f.records = beam.NewCounter(Namespace, "read_records")
	f.deadCount = beam.NewCounter(Namespace, "dead_letters")
}

func (f *readFn) ProcessElement(ctx context.Context, task string, emit func(datasets.Sample), tagged func(string)) error {
	var t ReadTask
	if err := json.Unmarshal([]byte(task), &t); err != nil {
		return fmt.Errorf("read task: %w", err)
	}
	return t.Read(ctx, runtime.GOMAXPROCS(0),
		func(s datasets.Sample) error { emit(s); return nil },
		func(d datasets.DeadLetter) error {
			b, err := json.Marshal(d)
			if err != nil {
				return err
			}
			tagged("D" + string(b))
			return nil
		},
		func(st datasets.FileStats) error {
			f.records.Inc(ctx, st.Records)
			f.deadCount.Inc(ctx, st.Dead)
			in := datasets.Input{Source: t.Options.Source, File: st.File, Format: string(st.Format),
				Records: st.Records, Samples: st.Samples, Dead: st.Dead}
			b, err := json.Marshal(Report{Kind: "input", Input: &in})
			if err != nil {
				return err
			}
			tagged("R" + string(b))
			return nil
		})
}
