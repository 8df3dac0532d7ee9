// Command sieve turns open and synthetic instruction data into clean,
// versioned supervised-fine-tuning datasets.
//
//	sieve run RECIPE [--store DIR] [beam flags]   run a recipe, commit a new version
//	sieve inspect PATH                            schema, counts and samples of a shard or version
//	sieve report NAME@VERSION [--compare N@V]     the version's HTML report and PNG charts
//	sieve train [RECIPE] --data NAME@VERSION ...  train or fine-tune a model on a version
//	sieve generate --model DIR PROMPT             sample a reply from a checkpoint
//	sieve eval CHECKPOINT... --data NAME@VERSION  loss and perplexity on the test split
//	sieve export axolotl|trl NAME@VERSION ...     an Axolotl YAML or TRL script for GPUs
//	sieve prism [--job_port N]                    serve Beam's prism runner as a job server
//	sieve version                                 print versions
//
// Recipes run on Apache Beam: prism in-process by default, any portable
// job server with --runner=universal --endpoint=HOST:PORT
// --environment_type=LOOPBACK, or Google Cloud Dataflow with
// --runner=dataflow and its usual flags.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/spf13/cobra"
)

func main() {
	if isWorker(os.Args[1:]) {
		// Started by a runner as an SDK harness (Dataflow, or a portable
		// runner with a process/docker environment): serve, then exit.
		flag.Parse()
		beam.Init()
		return
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func isWorker(args []string) bool {
	for _, a := range args {
		if a == "--worker" || a == "-worker" || strings.HasPrefix(a, "--worker=") || strings.HasPrefix(a, "-worker=") {
			return true
		}
	}
	return false
}

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// usageError marks bad flags or arguments (exit 2).
func usageError(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "sieve: %v\n", oneLine(err))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

// oneLine keeps an error to one line: the first line of a multi-line
// message (Beam's errors can span dozens).
func oneLine(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "sieve",
		Short: "Curate clean, versioned SFT datasets on Apache Beam",
		Long: `sieve merges open instruction datasets (alpaca, sharegpt, OpenAI messages,
prompt/completion, dolly, plain text) into one chat schema, deduplicates and
filters them, and writes an immutable dataset version as Parquet shards that
Hugging Face datasets, TRL, DuckDB and pandas read as they are.

A recipe (YAML) describes the job; 'sieve run' executes it as an Apache Beam
pipeline: on prism in-process by default, on any portable job server, or on
Google Cloud Dataflow.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newRunCmd(stdout, stderr), newInspectCmd(stdout), newVersionCmd(stdout), newPrismServeCmd(stderr), newDatasetsCmd(stdout),
		newTrainCmd(stdout, stderr), newGenerateCmd(os.Stdin, stdout), newExportCmd(stdout), newEvalCmd(stdout), newReportCmd(stdout))
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError("%s: %v", c.CommandPath(), err) })
	return root
}

// setupLogging sends log/slog records at level and above to w.
func setupLogging(w io.Writer, level slog.Level) {
	slog.SetDefault(slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
}
