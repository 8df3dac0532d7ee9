package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
)

func newDatasetsCmd(stdout io.Writer) *cobra.Command {
	var store string
	cmd := &cobra.Command{
		Use:   "datasets",
		Short: "List, show, compare, verify and remove dataset versions",
		Long: `Work with the version store. A version is named NAME@VERSION, where VERSION
is vN or latest (the default when omitted).`,
	}
	cmd.PersistentFlags().StringVar(&store, "store", "store", "version store root (local path or gs://bucket/prefix)")
	st := func() datasets.Store { return datasets.Store{Root: store} }

	list := &cobra.Command{
		Use:   "list [ROOT]",
		Short: "List datasets and their versions",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s := st()
			if len(args) == 1 {
				s.Root = args[0]
			}
			return listDatasets(cmd.Context(), stdout, s)
		},
	}
	show := &cobra.Command{
		Use:   "show NAME[@VERSION]",
		Short: "Show a version's manifest summary and lineage",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			v, err := openRef(cmd.Context(), st(), args[0])
			if err != nil {
				return err
			}
			return showVersion(stdout, v)
		},
	}
	var limit int
	diff := &cobra.Command{
		Use:   "diff NAME@A NAME@B",
		Short: "Compare two versions: samples added, removed and changed by id; funnels side by side",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := openRef(cmd.Context(), st(), args[0])
			if err != nil {
				return err
			}
			b, err := openRef(cmd.Context(), st(), args[1])
			if err != nil {
				return err
			}
			d, err := datasets.Diff(cmd.Context(), a, b)
			if err != nil {
				return err
			}
			return printDiff(stdout, a, b, d, limit)
		},
	}
	diff.Flags().IntVar(&limit, "ids", 5, "ids to list per category")
	verify := &cobra.Command{
		Use:   "verify NAME[@VERSION]",
		Short: "Re-hash every shard and check counts and schema; exit 1 naming any damaged shard",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := datasets.ParseRef(args[0])
			if err != nil {
				return usageError("%v", err)
			}
			s := st()
			ref, err = s.Resolve(cmd.Context(), ref)
			if err != nil {
				return err
			}
			m, err := s.ReadManifest(cmd.Context(), ref.Name, ref.Version)
			if err != nil {
				return err
			}
			v := &datasets.Version{Store: s, Ref: ref, Dir: s.VersionDir(ref.Name, ref.Version), Manifest: m}
			problems, err := v.Verify(cmd.Context())
			if err != nil {
				return err
			}
			if len(problems) > 0 {
				var parts []string
				for _, p := range problems {
					parts = append(parts, p.Path+": "+p.Reason)
				}
				return fmt.Errorf("%s is damaged: %s", ref, strings.Join(parts, "; "))
			}
			fmt.Fprintf(stdout, "%s ok: %d shards, %d rows, checksums match\n", ref, m.Totals.Shards, m.Totals.Rows)
			return nil
		},
	}
	var force bool
	rm := &cobra.Command{
		Use:   "rm NAME@VERSION",
		Short: "Remove a version (refused while another version lists it as parent, unless --force)",
		Long: `Remove a version: NAME@vN, or NAME@latest (the newest; the removed version is
named). Its number is never given out again. Refused while another version
lists it as parent, unless --force. Also removes a vN directory without
manifest.json (what an interrupted commit or rm leaves).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := datasets.ParseRef(args[0])
			if err != nil {
				return usageError("%v", err)
			}
			if !strings.Contains(args[0], "@") {
				return usageError("rm: name the version explicitly (NAME@vN)")
			}
			s := st()
			ref, err = s.Resolve(cmd.Context(), ref)
			if err != nil {
				return err
			}
			if err := s.Remove(cmd.Context(), ref, force); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "removed %s (%s); the number is not given out again\n", ref, s.VersionDir(ref.Name, ref.Version))
			return nil
		},
	}
	rm.Flags().BoolVar(&force, "force", false, "remove even when other versions list it as parent")
	cmd.AddCommand(list, show, diff, verify, rm)
	return cmd
}

func openRef(ctx context.Context, s datasets.Store, arg string) (*datasets.Version, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	ref, err := datasets.ParseRef(arg)
	if err != nil {
		return nil, usageError("%v", err)
	}
	return s.OpenVersion(ctx, ref)
}

func listDatasets(ctx context.Context, w io.Writer, s datasets.Store) error {
	names, err := s.Datasets(ctx)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		fmt.Fprintf(w, "no datasets in %s\n", s.Root)
		return nil
	}
	incomplete := map[string][]string{}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATASET\tVERSION\tCREATED\tROWS\tSHARDS\tCONTENT ID\tPARENTS")
	for _, n := range names {
		vs, err := s.Versions(ctx, n)
		if err != nil {
			return err
		}
		for _, v := range vs {
			m, err := s.ReadManifest(ctx, n, v)
			if err != nil {
				fmt.Fprintf(tw, "%s\t%s\t(bad manifest)\t\t\t\t\n", n, v)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", n, v, m.CreatedAt, m.Totals.Rows, m.Totals.Shards, short(m.ContentID), strings.Join(m.Parents, ","))
		}
		if inc, err := s.Incomplete(ctx, n); err == nil {
			incomplete[n] = inc
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range names {
		for _, v := range incomplete[n] {
			fmt.Fprintf(w, "note: %s has no %s: not a version (an interrupted commit or rm left it); 'sieve datasets rm %s@%s' removes it\n", s.VersionDir(n, v), datasets.ManifestFile, n, v)
		}
	}
	return nil
}

func short(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

func showVersion(w io.Writer, v *datasets.Version) error {
	m := v.Manifest
	fmt.Fprintf(w, "%s  %s\n", v.Ref, v.Dir)
	fmt.Fprintf(w, "created     %s by sieve %s on %s\n", m.CreatedAt, m.Sieve, m.Runner)
	fmt.Fprintf(w, "content id  %s\n", m.ContentID)
	if len(m.Parents) > 0 {
		fmt.Fprintf(w, "parents     %s\n", strings.Join(m.Parents, ", "))
		for _, c := range v.Store.CheckParents(context.Background(), m) {
			lineage(w, v.Store, c, "  ", 0)
		}
	} else {
		fmt.Fprintln(w, "parents     (none)")
	}
	fmt.Fprintln(w, "\ninputs:")
	for _, in := range m.Inputs {
		fmt.Fprintf(w, "  %-12s %-8s %8d records  %s  sha256 %s\n", in.Source, in.Format, in.Records, in.File, short(in.SHA256))
	}
	fmt.Fprintln(w, "\nsplits:")
	for _, sp := range m.Splits {
		fmt.Fprintf(w, "  %-6s %8d rows  %3d shards  %10d bytes\n", sp.Name, sp.Rows, len(sp.Shards), sp.Bytes)
	}
	fmt.Fprintln(w)
	return m.Funnel.WriteTable(w)
}

// lineage prints a parent, or why the store no longer holds the version
// the child was built from under its name, and the parent's own parents,
// recursively.
func lineage(w io.Writer, s datasets.Store, c datasets.ParentCheck, indent string, depth int) {
	if p := c.Problem(); p != "" {
		fmt.Fprintf(w, "%s└ %s (%s)\n", indent, c.Ref, p)
		return
	}
	r, err := datasets.ParseRef(c.Ref)
	if err != nil {
		return
	}
	m, err := s.ReadManifest(context.Background(), r.Name, r.Version)
	if err != nil {
		return
	}
	fmt.Fprintf(w, "%s└ %s  %d rows  content id %s\n", indent, c.Ref, m.Totals.Rows, short(m.ContentID))
	if depth > 50 {
		return
	}
	for _, pc := range s.CheckParents(context.Background(), m) {
		lineage(w, s, pc, indent+"  ", depth+1)
	}
}

func printDiff(w io.Writer, a, b *datasets.Version, d *datasets.DiffResult, limit int) error {
	fmt.Fprintf(w, "%s → %s\n\n", a.Ref, b.Ref)
	fmt.Fprintf(w, "added %d, removed %d, changed %d, unchanged %d\n", len(d.Added), len(d.Removed), len(d.Changed), d.Same)
	for _, c := range []struct {
		name string
		ids  []string
	}{{"added", d.Added}, {"removed", d.Removed}, {"changed", d.Changed}} {
		for i, id := range c.ids {
			if i == limit {
				fmt.Fprintf(w, "  … %d more %s\n", len(c.ids)-limit, c.name)
				break
			}
			fmt.Fprintf(w, "  %-7s %s\n", c.name, id)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "\n\t%s\t%s\t\n", a.Ref.Version, b.Ref.Version)
	row := func(label string, x, y int64) { fmt.Fprintf(tw, "%s\t%d\t%d\t\n", label, x, y) }
	fa, fb := a.Manifest.Funnel, b.Manifest.Funnel
	row("read", fa.Read, fb.Read)
	row("dead-lettered", fa.DeadLettered, fb.DeadLettered)
	drops := map[string][2]int64{}
	for i, f := range []datasets.Funnel{fa, fb} {
		for _, st := range f.Stages {
			for _, c := range st.Dropped {
				v := drops[st.Stage+"/"+c.Reason]
				v[i] = c.Count
				drops[st.Stage+"/"+c.Reason] = v
			}
		}
	}
	keys := make([]string, 0, len(drops))
	for k := range drops {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		row("dropped "+k, drops[k][0], drops[k][1])
	}
	row("written", fa.Written, fb.Written)
	splits := map[string][2]int64{}
	for i, m := range []*datasets.Manifest{a.Manifest, b.Manifest} {
		for _, sp := range m.Splits {
			v := splits[sp.Name]
			v[i] = sp.Rows
			splits[sp.Name] = v
		}
	}
	for _, n := range []string{"train", "test"} {
		if v, ok := splits[n]; ok {
			row(n+" rows", v[0], v[1])
		}
	}
	row("bytes", a.Manifest.Totals.Bytes, b.Manifest.Totals.Bytes)
	return tw.Flush()
}
