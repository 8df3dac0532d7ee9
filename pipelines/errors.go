package pipelines

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/transforms"
)

// ErrInterrupted is Run's error when its context was cancelled (SIGINT,
// SIGTERM): the run stopped and its staging directory was removed.
var ErrInterrupted = errors.New("interrupted; nothing committed")

// PauseAfterPipelineEnv, when set in the environment to a file path,
// makes Run write that file (holding the staging directory) once the
// pipeline has finished and the manifest is assembled, and wait there up
// to a minute, or until its context is cancelled, before it commits. A
// test hook: it lets a test interrupt a run at that point.
const PauseAfterPipelineEnv = "SIEVE_TEST_PAUSE_AFTER_PIPELINE"

// DefaultMaxDeadFraction is Options.MaxDeadFraction's default.
const DefaultMaxDeadFraction = 0.5

// warnDeadFraction is the share of dead letters in one file above which a
// run warns about that file.
const warnDeadFraction = 0.1

// failedMarker ends the line Beam puts before a DoFn's own error.
const failedMarker = "] failed:\n"

// pipelineCause finds the root cause of a failed pipeline: the error a
// DoFn returned, which Beam wraps in kilobytes of plan dumps (the direct
// runner) or leaves out of the job's error altogether, logging it
// instead (prism: "job job-001 failed:" and nothing after).
func pipelineCause(err error) string {
	s := err.Error()
	if c, ok := doFnCause(s); ok {
		return c
	}
	for _, logged := range runnerErrors.recent() {
		if c, ok := doFnCause(logged); ok {
			return c
		}
	}
	// "job job-001 failed:\n<message>": the message, when there is one.
	if _, msg, ok := strings.Cut(s, "failed:\n"); ok {
		if msg = firstLine(msg); msg != "" && msg != "<no error received>" {
			return msg
		}
	}
	return firstLine(s)
}

// doFnCause returns what follows the innermost "DoFn[…] failed:" of a
// Beam error text, up to the end of its line.
func doFnCause(s string) (string, bool) {
	i := strings.LastIndex(s, failedMarker)
	if i < 0 {
		return "", false
	}
	c := firstLine(s[i+len(failedMarker):])
	return c, c != ""
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}

// runnerErrors holds the last error records Beam's runners logged (the
// only place prism's in-process runs keep a DoFn's error).
var runnerErrors errorRing

type errorRing struct {
	mu   sync.Mutex
	msgs []string
}

func (e *errorRing) add(s string) {
	if len(s) > 64<<10 {
		s = s[:64<<10]
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.msgs = append(e.msgs, s)
	if len(e.msgs) > 32 {
		e.msgs = e.msgs[len(e.msgs)-32:]
	}
}

// recent returns the records, newest first.
func (e *errorRing) recent() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, len(e.msgs))
	for i, m := range e.msgs {
		out[len(out)-1-i] = m
	}
	return out
}

func (e *errorRing) reset() {
	e.mu.Lock()
	e.msgs = nil
	e.mu.Unlock()
}

// LogHandler wraps the handler of sieve's log output: records that
// Beam's runners log (slog records from github.com/apache/beam code) go
// to next only when verbose, and their errors are kept, for Run to find
// a failed pipeline's root cause in. sieve's own records go to next.
func LogHandler(next slog.Handler, verbose bool) slog.Handler {
	return &runnerLogHandler{next: next, verbose: verbose}
}

type runnerLogHandler struct {
	next    slog.Handler
	verbose bool
	attrs   []slog.Attr
}

func (h *runnerLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError || h.next.Enabled(ctx, l)
}

func (h *runnerLogHandler) Handle(ctx context.Context, r slog.Record) error {
	if fromBeam(r.PC) {
		if r.Level >= slog.LevelError {
			var b strings.Builder
			b.WriteString(r.Message)
			add := func(a slog.Attr) bool {
				b.WriteString(" ")
				b.WriteString(a.Key)
				b.WriteString("=")
				b.WriteString(a.Value.String())
				return true
			}
			for _, a := range h.attrs {
				add(a)
			}
			r.Attrs(add)
			runnerErrors.add(b.String())
		}
		if !h.verbose {
			return nil
		}
	}
	if !h.next.Enabled(ctx, r.Level) {
		return nil
	}
	return h.next.Handle(ctx, r)
}

func (h *runnerLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &runnerLogHandler{next: h.next.WithAttrs(as), verbose: h.verbose, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *runnerLogHandler) WithGroup(name string) slog.Handler {
	return &runnerLogHandler{next: h.next.WithGroup(name), verbose: h.verbose, attrs: h.attrs}
}

// fromBeam reports whether a log record was made by Beam's code (or by
// code that records no caller, as Beam's log package may).
func fromBeam(pc uintptr) bool {
	if pc == 0 {
		return true
	}
	f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
	return strings.HasPrefix(f.Function, "github.com/apache/beam/") || strings.HasPrefix(f.Function, "google.golang.org/grpc")
}

// fileDeaths is what the dead letters say about one input file.
type fileDeaths struct {
	unreadable string         // the detail of its "unreadable file" dead letter
	reasons    map[string]int // dead letters by reason
}

// readDeaths reads a run's dead letters file and sums it by input file.
func readDeaths(ctx context.Context, dir string) (map[string]*fileDeaths, error) {
	rc, err := datasets.Open(ctx, dir+"/"+transforms.DeadLettersFile)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	out := map[string]*fileDeaths{}
	br := bufio.NewReaderSize(rc, 1<<20)
	for {
		line, err := br.ReadBytes('\n')
		if len(strings.TrimSpace(string(line))) > 0 {
			var dl datasets.DeadLetter
			if json.Unmarshal(line, &dl) == nil && dl.Stage == "read" {
				fd := out[dl.File]
				if fd == nil {
					fd = &fileDeaths{reasons: map[string]int{}}
					out[dl.File] = fd
				}
				fd.reasons[dl.Reason]++
				if dl.Reason == datasets.UnreadableReason && fd.unreadable == "" {
					fd.unreadable = dl.Detail
				}
			}
		}
		if err != nil {
			break
		}
	}
	return out, nil
}

// checkDeadLetters looks at each input file's dead letters: a file that
// broke (an unreadable container, a truncated stream, a broken array) or
// lost more than a tenth of its records is a warning; a file that lost
// more than max of them fails the run. max <= 0 means
// DefaultMaxDeadFraction; 1 or more turns the failure off.
func checkDeadLetters(ctx context.Context, dir string, m *datasets.Manifest, max float64) (warnings []string, err error) {
	if max <= 0 {
		max = DefaultMaxDeadFraction
	}
	var worst []datasets.Input
	for _, in := range m.Inputs {
		if in.Dead > 0 {
			worst = append(worst, in)
		}
	}
	if len(worst) == 0 {
		return nil, nil
	}
	deaths, err := readDeaths(ctx, dir)
	if err != nil {
		return nil, fmt.Errorf("dead letters: %w", err)
	}
	mostly := func(file string) string {
		fd := deaths[file]
		if fd == nil {
			return ""
		}
		var reasons []string
		for r := range fd.reasons {
			reasons = append(reasons, r)
		}
		sort.Slice(reasons, func(i, j int) bool {
			if fd.reasons[reasons[i]] != fd.reasons[reasons[j]] {
				return fd.reasons[reasons[i]] > fd.reasons[reasons[j]]
			}
			return reasons[i] < reasons[j]
		})
		return reasons[0]
	}
	for _, in := range worst {
		frac := float64(in.Dead) / float64(in.Records)
		if max < 1 && frac > max {
			why := "mostly " + mostly(in.File)
			if fd := deaths[in.File]; fd != nil && fd.unreadable != "" {
				why = fd.unreadable
			}
			return nil, fmt.Errorf("%s: %d of %d records dead-lettered (%.0f%%; %s), above --max-dead-fraction %g; nothing committed (--max-dead-fraction=1 keeps such files)",
				in.File, in.Dead, in.Records, 100*frac, why, max)
		}
	}
	for _, in := range worst {
		frac := float64(in.Dead) / float64(in.Records)
		var unreadable string
		if fd := deaths[in.File]; fd != nil {
			unreadable = fd.unreadable
		}
		switch {
		case unreadable != "":
			warnings = append(warnings, fmt.Sprintf("%s: %s (%d of %d records dead-lettered)", in.File, unreadable, in.Dead, in.Records))
		case frac > warnDeadFraction:
			warnings = append(warnings, fmt.Sprintf("%s: %d of %d records dead-lettered (%.0f%%, mostly %s)", in.File, in.Dead, in.Records, 100*frac, mostly(in.File)))
		}
	}
	return warnings, nil
}
