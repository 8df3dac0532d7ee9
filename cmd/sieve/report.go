package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/report"
)

func newReportCmd(stdout io.Writer) *cobra.Command {
	var store, out, compare string
	var rows int
	cmd := &cobra.Command{
		Use:   "report NAME[@VERSION]|DIR",
		Short: "Write a version's report: one self-contained HTML page and PNG charts",
		Long: `Write the report of a committed version (NAME[@VERSION], VERSION vN or latest,
or a version directory): report/index.html inside the version directory (or
-o DIR), a page that opens from disk without network, and its charts as PNG
files: the stage funnel, a 2-D map of samples coloured by topic and the topic
sizes (when the version ran a topics stage), lengths per role, quality- and
judge-score distributions (when present) and example samples per topic.
'sieve run' writes it with every version it commits (--no-report skips it).

--compare NAME@VERSION adds the topic mix of a second version, its samples
assigned with the first version's topic model; its page goes to
report/compare-NAME-vN/ of the first version unless -o says otherwise.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runReport(cmd.Context(), stdout, args[0], store, out, compare, rows)
		},
	}
	cmd.Flags().StringVar(&store, "store", "store", "version store root, for NAME[@VERSION]")
	cmd.Flags().StringVarP(&out, "output", "o", "", "directory to write the page and PNGs into (default: report/ in the version directory)")
	cmd.Flags().StringVar(&compare, "compare", "", "a second version NAME[@VERSION] whose topic mix to show beside this one's")
	cmd.Flags().IntVar(&rows, "rows", 0, "rows sampled for the length and score distributions (default 20000)")
	return cmd
}

// reportDir resolves a report's target to a committed version's
// directory and manifest, failing in one line for anything else.
func reportDir(ctx context.Context, target, store string) (string, *datasets.Manifest, error) {
	dir, err := versionDir(ctx, target, store)
	if err != nil {
		return "", nil, fmt.Errorf("report: %v", err)
	}
	m, err := report.ReadVersion(ctx, dir)
	if err != nil {
		return "", nil, fmt.Errorf("report: %s: no such version (%s has no %s)", target, dir, datasets.ManifestFile)
	}
	return dir, m, nil
}

func runReport(ctx context.Context, w io.Writer, target, store, out, compare string, rows int) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if rows < 0 {
		return usageError("report: --rows %d: want a positive number", rows)
	}
	dir, _, err := reportDir(ctx, target, store)
	if err != nil {
		return err
	}
	var cdir string
	if compare != "" {
		var cm *datasets.Manifest
		if cdir, cm, err = reportDir(ctx, compare, store); err != nil {
			return err
		}
		if out == "" {
			out = joinPath(joinPath(dir, report.Dir), "compare-"+cm.Name+"-"+cm.Version)
		}
	}
	res, err := report.Build(ctx, dir, cdir, out, report.Options{Rows: rows})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "report: %s\n", res.Index)
	if !strings.Contains(res.Index, "://") {
		if abs, err := filepath.Abs(res.Index); err == nil {
			fmt.Fprintf(w, "open file://%s in a browser (%d files, no network needed)\n", filepath.ToSlash(abs), len(res.Files))
		}
	}
	return nil
}
