package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sieve-data/sieve/datasets"
)

func newInspectCmd(stdout io.Writer) *cobra.Command {
	var n int
	var store string
	var asJSON bool
	var rejected string
	cmd := &cobra.Command{
		Use:   "inspect PATH|NAME[@VERSION]",
		Short: "Show the schema, counts and a few samples of a shard or a dataset version",
		Long: `Show the schema, counts and a few samples of a Parquet shard, a version
directory, or a dataset in the store named NAME[@VERSION] (VERSION is vN or
latest, the default).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if rejected != "" {
				return inspectRejected(cmd.Context(), stdout, args[0], store, rejected, n, asJSON)
			}
			return inspect(cmd.Context(), stdout, args[0], store, n, asJSON)
		},
	}
	cmd.Flags().StringVar(&rejected, "rejected", "", "show rejected samples instead: all (--rejected), or those of a stage, a reason or STAGE/REASON")
	cmd.Flags().Lookup("rejected").NoOptDefVal = "*"
	cmd.Flags().IntVarP(&n, "samples", "n", 3, "number of samples to show")
	cmd.Flags().StringVar(&store, "store", "store", "version store root, for NAME[@VERSION]")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the samples as JSON lines")
	return cmd
}

func inspect(ctx context.Context, w io.Writer, target, store string, n int, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if strings.HasSuffix(target, ".parquet") {
		return inspectShard(ctx, w, target, n, asJSON, true)
	}
	dir, err := versionDir(ctx, target, store)
	if err != nil {
		return fmt.Errorf("inspect: %s is neither a file, a version directory nor a dataset in store %s", target, store)
	}
	data, err := datasets.ReadFile(ctx, joinPath(dir, datasets.ManifestFile))
	if err != nil {
		return fmt.Errorf("inspect: %s has no %s: not a committed version", dir, datasets.ManifestFile)
	}
	var m datasets.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return fmt.Errorf("inspect: %s: bad manifest: %w", dir, err)
	}
	// Every shard is checked for presence and size (not re-hashed:
	// 'sieve datasets verify' does that) before counts are shown.
	v := &datasets.Version{Ref: datasets.Ref{Name: m.Name, Version: m.Version}, Dir: dir, Manifest: &m}
	problems := v.CheckFiles(ctx)
	damaged := map[string]bool{}
	for _, p := range problems {
		damaged[p.Path] = true
	}
	warn := w
	if asJSON {
		warn = os.Stderr
	}
	if len(problems) > 0 {
		fmt.Fprintf(warn, "WARNING: %s@%s is damaged: %d of %d shards missing or resized; the counts below are the manifest's, not what is there ('sieve datasets verify %s@%s' checks every byte)\n", m.Name, m.Version, len(problems), m.Totals.Shards, m.Name, m.Version)
		for _, p := range problems {
			fmt.Fprintf(warn, "  %s %s\n", p.Path, p.Reason)
		}
		fmt.Fprintln(warn)
	}
	if !asJSON {
		fmt.Fprintf(w, "%s@%s  %s\ncreated %s by sieve %s on %s\n", m.Name, m.Version, dir, m.CreatedAt, m.Sieve, m.Runner)
		if len(m.Parents) > 0 {
			// The store the version is in: the --store root, or the one
			// above a version directory given by path.
			st := datasets.Store{Root: parentPath(parentPath(dir))}
			for _, c := range st.CheckParents(ctx, &m) {
				if p := c.Problem(); p != "" {
					fmt.Fprintf(w, "parent  %s (%s)\n", c.Ref, p)
				} else {
					fmt.Fprintf(w, "parent  %s  content id %s\n", c.Ref, short(c.Current))
				}
			}
		}
		fmt.Fprintln(w)
		for _, sp := range m.Splits {
			fmt.Fprintf(w, "%-6s %8d rows  %3d shards  %10d bytes\n", sp.Name, sp.Rows, len(sp.Shards), sp.Bytes)
		}
		fmt.Fprintln(w)
		m.Funnel.WriteTable(w)
		fmt.Fprintln(w)
	}
	for _, sp := range m.Splits {
		for _, sh := range sp.Shards {
			if sh.Rows > 0 && !damaged[sh.Path] {
				return inspectShard(ctx, w, joinPath(dir, sh.Path), n, asJSON, !asJSON)
			}
		}
	}
	return nil
}

// versionDir resolves PATH or NAME[@VERSION] to a version directory.
func versionDir(ctx context.Context, target, store string) (string, error) {
	if fi, err := os.Stat(target); err == nil && fi.IsDir() {
		return target, nil
	}
	ref, err := datasets.ParseRef(target)
	if err != nil {
		return "", err
	}
	st := datasets.Store{Root: store}
	ref, err = st.Resolve(ctx, ref)
	if err != nil {
		return "", err
	}
	return st.VersionDir(ref.Name, ref.Version), nil
}

// inspectRejected lists a version's rejected samples, counted by stage
// and reason, with examples of those the selector picks.
func inspectRejected(ctx context.Context, w io.Writer, target, store, sel string, n int, asJSON bool) error {
	if ctx == nil {
		ctx = context.Background()
	}
	dir, err := versionDir(ctx, target, store)
	if err != nil {
		return err
	}
	f, err := datasets.Open(ctx, joinPath(dir, "rejected.jsonl"))
	if err != nil {
		return fmt.Errorf("inspect: %s has no rejected.jsonl", dir)
	}
	defer f.Close()
	counts := map[string]int{}
	var keys []string
	shown := 0
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	dec := json.NewDecoder(f)
	for {
		var r datasets.Rejected
		if err := dec.Decode(&r); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("rejected.jsonl: %w", err)
		}
		key := r.Stage + "/" + r.Reason
		if counts[key] == 0 {
			keys = append(keys, key)
		}
		counts[key]++
		if sel != "*" && sel != r.Stage && sel != r.Reason && sel != key {
			continue
		}
		if shown >= n {
			continue
		}
		shown++
		if asJSON {
			if err := enc.Encode(r); err != nil {
				return err
			}
			continue
		}
		s := r.Sample
		fmt.Fprintf(w, "── %s  %s  %s\n   %s\n", key, s.ID, filepath.Base(s.Source.File)+fmt.Sprintf("#%d", s.Source.Index), r.Detail)
		for _, msg := range s.Messages {
			fmt.Fprintf(w, "  [%s] %s\n", msg.Role, clip(msg.Content, 200))
		}
	}
	if !asJSON {
		fmt.Fprintln(w)
		for _, k := range keys {
			fmt.Fprintf(w, "%8d  %s\n", counts[k], k)
		}
		if sel != "*" && shown == 0 {
			return fmt.Errorf("inspect: no rejected sample matches %q", sel)
		}
	}
	return nil
}

func inspectShard(ctx context.Context, w io.Writer, file string, n int, asJSON, header bool) error {
	rc, err := datasets.Open(ctx, file)
	if err != nil {
		return err
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	sr, err := datasets.OpenShard(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	defer sr.Close()
	if header {
		fmt.Fprintf(w, "%s: %d rows, %d bytes\n%s\n\n", file, sr.NumRows(), len(data), sr.Schema())
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := 0; i < n; i++ {
		s, err := sr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		if asJSON {
			if err := enc.Encode(s); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(w, "── %s  %s %s#%d  %s\n", s.ID, s.Source.Dataset, filepath.Base(s.Source.File), s.Source.Index, s.License)
		for _, msg := range s.Messages {
			fmt.Fprintf(w, "  [%s] %s\n", msg.Role, clip(msg.Content, 240))
		}
	}
	return nil
}

func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// joinPath joins a version directory and a path in it, local or remote
// (gs://…: filepath.Join would fold the scheme's "//").
func joinPath(dir, rel string) string {
	if strings.Contains(dir, "://") {
		return strings.TrimSuffix(dir, "/") + "/" + rel
	}
	return filepath.Join(dir, rel)
}

// parentPath is filepath.Dir for local and remote paths.
func parentPath(p string) string {
	if strings.Contains(p, "://") {
		if i := strings.LastIndex(strings.TrimSuffix(p, "/"), "/"); i > strings.Index(p, "://")+2 {
			return p[:i]
		}
		return p
	}
	return filepath.Dir(p)
}
