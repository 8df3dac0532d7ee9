package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

const runHelp = `Run a recipe and commit a new dataset version.

Usage:
  sieve run RECIPE [flags] [beam flags]

Flags:
  --store DIR      version store root (default: the recipe's output.store, else ./store)
  --quiet          print nothing but errors
  --verbose        log pipeline progress (log/slog, INFO level)
  --json           print the committed manifest as JSON instead of the funnel table
  --force          rebuild even when a version with the same content id exists
  --no-report      do not write the version's report (report/index.html and PNGs;
                   'sieve report NAME@VERSION' writes it later)
  --max-dead-fraction F
                   fail the run, committing nothing, when an input file loses more
                   than this fraction of its records to dead letters (default 0.5;
                   1 turns the check off). Files that break part way, or lose more
                   than a tenth, are warned about either way
  --dry-run        predict the run's funnel in this process, without running the
                   pipeline or writing: each stage over what the stages above it leave
                   (fuzzy dedup estimated above 20,000 samples; LLM stages not
                   predicted), with examples of each drop's evidence and kept
                   samples near the filters' thresholds

Beam flags pass through to the runner, for example:
  --runner=direct                         Beam's direct runner, in-process (the default)
  --runner=prism                          prism, in-process
  --runner=universal --endpoint=HOST:PORT --environment_type=LOOPBACK
                                          any portable job server (e.g. 'sieve prism')
  --runner=dataflow --project=P --region=R --temp_location=gs://B/tmp
                                          Google Cloud Dataflow
`

// runFlags are sieve's own flags of 'sieve run'.
type runFlags struct {
	store   string
	quiet   bool
	verbose bool
	json    bool
	force   bool
	dryRun  bool
	// noReport is --no-report.
	noReport bool
	// maxDead is --max-dead-fraction.
	maxDead float64
	// Profiles for developers (hidden from help).
	cpuprofile, memprofile string
}

func newRunCmd(stdout, stderr io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:                "run RECIPE [flags] [beam flags]",
		Short:              "Run a recipe and commit a new dataset version",
		DisableFlagParsing: true, // Beam's flags are Go flags; parsed below
		RunE: func(cmd *cobra.Command, args []string) error {
			for _, a := range args {
				if a == "-h" || a == "--help" || a == "-help" {
					fmt.Fprint(stdout, runHelp)
					return nil
				}
			}
			rf, positional, err := parseRunFlags(args)
			if err != nil {
				return err
			}
			if len(positional) != 1 {
				return usageError("run: want exactly one recipe file, got %d arguments (see sieve run --help)", len(positional))
			}
			return runRecipe(positional[0], rf, stdout, stderr)
		},
	}
}

// parseRunFlags parses sieve's flags and Beam's (registered on Go's
// flag.CommandLine by the Beam packages) in any order around the recipe.
func parseRunFlags(args []string) (runFlags, []string, error) {
	var rf runFlags
	fs := flag.NewFlagSet("sieve run", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&rf.store, "store", "", "")
	fs.BoolVar(&rf.quiet, "quiet", false, "")
	fs.BoolVar(&rf.verbose, "verbose", false, "")
	fs.BoolVar(&rf.json, "json", false, "")
	fs.BoolVar(&rf.force, "force", false, "")
	fs.BoolVar(&rf.dryRun, "dry-run", false, "")
	fs.BoolVar(&rf.noReport, "no-report", false, "")
	fs.Float64Var(&rf.maxDead, "max-dead-fraction", pipelines.DefaultMaxDeadFraction, "")
	fs.StringVar(&rf.cpuprofile, "cpuprofile", "", "")
	fs.StringVar(&rf.memprofile, "memprofile", "", "")
	flag.CommandLine.VisitAll(func(f *flag.Flag) {
		if fs.Lookup(f.Name) == nil {
			fs.Var(f.Value, f.Name, f.Usage)
		}
	})
	if !flag.Parsed() {
		_ = flag.CommandLine.Parse(nil) // Beam checks flag.Parsed()
	}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return rf, nil, usageError("run: %v", err)
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if !(rf.maxDead > 0 && rf.maxDead <= 1) {
		return rf, nil, usageError("run: --max-dead-fraction %g: want a fraction above 0, at most 1 (1 turns the check off)", rf.maxDead)
	}
	return rf, positional, nil
}

func runRecipe(file string, rf runFlags, stdout, stderr io.Writer) error {
	level := slog.LevelWarn
	if rf.verbose {
		level = slog.LevelInfo
	}
	if rf.quiet {
		level = slog.LevelError
	}
	beam.Init() // before setupLogging: Beam's init installs its own slog handler
	setupLogging(stderr, level)
	// Runner logs only with --verbose; their errors are kept for the
	// root cause of a failed pipeline.
	slog.SetDefault(slog.New(pipelines.LogHandler(slog.Default().Handler(), rf.verbose)))
	if err := pipelines.CheckRunner(); err != nil {
		return &exitError{code: 2, err: err}
	}

	r, err := recipe.Load(file)
	if err != nil {
		var re *recipe.Error
		if errors.As(err, &re) {
			return &exitError{code: 2, err: err}
		}
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal cancels the run; a second one kills the
		// process as if sieve caught none.
		<-ctx.Done()
		stop()
	}()
	if rf.dryRun {
		return pipelines.DryRun(ctx, r, datasets.Store{Root: pipelines.StoreRoot(r, pipelines.Options{Store: rf.store})}, stdout, 3)
	}

	if rf.cpuprofile != "" {
		f, err := os.Create(rf.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if rf.memprofile != "" {
		// The heap at its peak, not at the end (see peakHeap).
		defer startPeakHeap(rf.memprofile, 250*time.Millisecond).Stop()
	}
	prog := newProgress(stderr, !rf.quiet && !rf.verbose && isTerminal(stderr))
	warn := func(s string) {
		if !rf.quiet {
			fmt.Fprintln(stderr, "sieve: warning: "+s)
		}
	}
	res, err := pipelines.Run(ctx, r, pipelines.Options{Store: rf.store, Force: rf.force, Status: prog.status,
		Notice: func(s string) { fmt.Fprintln(stderr, "sieve: "+s) }, Warn: warn, MaxDeadFraction: rf.maxDead, NoReport: rf.noReport})
	prog.done()
	if err != nil && (ctx.Err() != nil || errors.Is(err, pipelines.ErrInterrupted)) {
		return &exitError{code: 130, err: pipelines.ErrInterrupted}
	}
	if err != nil {
		return err
	}
	m := res.Manifest
	if rf.json {
		// A stage that stopped warns on stderr, with --json too.
		for _, s := range m.Stopped {
			if !res.UpToDate {
				warn(s)
			}
		}
		return writeJSON(stdout, m)
	}
	if rf.quiet {
		return nil
	}
	if res.UpToDate {
		fmt.Fprintf(stdout, "%s@%s is up to date (content id %s): same recipe, inputs and sieve version; --force rebuilds it\n", m.Name, m.Version, m.ContentID)
		return nil
	}
	fmt.Fprintf(stdout, "\n%s@%s  %s\n\n", m.Name, m.Version, res.Dir)
	m.Funnel.WriteTable(stdout)
	var parts []string
	for _, sp := range m.Splits {
		parts = append(parts, fmt.Sprintf("%s %d rows / %d shards", sp.Name, sp.Rows, len(sp.Shards)))
	}
	sort.Strings(parts)
	fmt.Fprintf(stdout, "\n%s; dead letters: %s, rejected: %s\n", strings.Join(parts, ", "), m.DeadLetters, m.Rejected)
	for _, u := range m.LLM {
		fmt.Fprintf(stdout, "llm %s (%s): %d calls (%d from the cache), %d requests, %d retries, %d tokens paid, cost %.4f\n",
			u.Endpoint, u.Model, u.Calls, u.CachedCalls, u.Requests, u.Retries, u.TotalTokens, u.Cost)
	}
	for _, s := range m.Stopped {
		warn(s)
	}
	if res.Report != "" {
		fmt.Fprintf(stdout, "report: %s\n", res.Report)
	}
	return nil
}

// progress shows a one-line spinner with the current phase and elapsed
// time on a terminal; elsewhere it prints nothing.
type progress struct {
	w       io.Writer
	on      bool
	phase   chan string
	stopped chan struct{}
}

func newProgress(w io.Writer, on bool) *progress {
	p := &progress{w: w, on: on, phase: make(chan string, 8), stopped: make(chan struct{})}
	if on {
		go p.loop()
	} else {
		close(p.stopped)
	}
	return p
}

func (p *progress) status(s string) {
	if p.on {
		p.phase <- s
	}
}

func (p *progress) done() {
	if p.on {
		close(p.phase)
		<-p.stopped
	}
}

func (p *progress) loop() {
	defer close(p.stopped)
	frames := []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
	start := time.Now()
	phase := ""
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case s, ok := <-p.phase:
			if !ok {
				fmt.Fprint(p.w, "\r\033[K")
				return
			}
			phase = s
		case <-t.C:
		}
		fmt.Fprintf(p.w, "\r\033[K%c %s · %.1fs", frames[i%len(frames)], phase, time.Since(start).Seconds())
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
