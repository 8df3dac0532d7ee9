package pipelines

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam/options/jobopts"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// Runners are the runners sieve can run a recipe on (Beam's names and
// their aliases).
var Runners = []string{"direct", "DirectRunner", "prism", "PrismRunner", "universal", "portable", "PortableRunner",
	"dataflow", "DataflowRunner", "flink", "FlinkRunner", "spark", "SparkRunner"}

// CheckRunner reports a --runner that names no runner sieve knows
// (Beam itself exits the process with a log line for those).
func CheckRunner() error {
	name := RunnerName()
	for _, r := range Runners {
		if r == name {
			return nil
		}
	}
	return fmt.Errorf("unknown runner %s: want direct (the default), prism, universal (with --endpoint), dataflow, flink or spark", name)
}

// JobServerTimeout bounds the check that a portable runner's job server
// answers (Beam itself waits two minutes, silently).
var JobServerTimeout = 5 * time.Second

// checkJobServer dials the job server of a portable runner.
func checkJobServer(ctx context.Context) error {
	switch RunnerName() {
	case "universal", "portable", "PortableRunner":
		if *jobopts.Endpoint == "" {
			return fmt.Errorf("runner %s needs --endpoint=HOST:PORT, the address of a job server (for example one 'sieve prism' serves)", RunnerName())
		}
	case "flink", "FlinkRunner", "spark", "SparkRunner":
		if *jobopts.Endpoint == "" {
			return nil // Beam starts the runner's job server
		}
	default:
		return nil
	}
	ep := *jobopts.Endpoint
	d := net.Dialer{Timeout: JobServerTimeout}
	c, err := d.DialContext(ctx, "tcp", ep)
	if err != nil {
		return fmt.Errorf("no job server at %s (%v): start one ('sieve prism --job_port PORT') or fix --endpoint", ep, err)
	}
	c.Close()
	return nil
}

// checkStore checks that a local store root is a directory (or can be
// made one) that this process can write. Remote stores are checked by
// their writes.
func checkStore(root, name string) error {
	if strings.Contains(root, "://") {
		return nil
	}
	p := filepath.Join(root, name)
	for {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return fmt.Errorf("store %s: %s is not a directory", root, p)
			}
			break
		}
		if !os.IsNotExist(err) && !errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("store %s: %w", root, err)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return fmt.Errorf("store %s: %w", root, err)
		}
		p = parent
	}
	f, err := os.CreateTemp(p, ".sieve-write-check-*")
	if err != nil {
		return fmt.Errorf("store %s is not writable: %w", root, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// decontamFiles resolves a decontaminate stage's files relative to the
// recipe and expands their globs (sorted matches); a pattern without
// matches, or a missing file, is an error naming it.
func decontamFiles(ctx context.Context, files []string, resolve func(string) string) ([]string, error) {
	var out []string
	for _, f := range files {
		matches, err := datasets.Glob(ctx, resolve(f))
		if err != nil {
			return nil, err
		}
		out = append(out, matches...)
	}
	return out, nil
}

// checkPlan checks what the plan's inputs allow before the pipeline
// starts: every decontaminate stage's files exist (globs expanded), and
// every shard of a dataset: source still has the bytes its manifest
// recorded.
func checkPlan(ctx context.Context, plan *Plan) error {
	r := plan.Recipe
	for _, st := range r.Stages {
		if d, ok := st.Config.(*recipe.Decontaminate); ok {
			if _, err := decontamFiles(ctx, d.Files, r.ResolvePath); err != nil {
				return fmt.Errorf("stage %s: %w", st.Kind, err)
			}
		}
	}
	hashes := map[string]string{}
	for _, in := range plan.Inputs {
		hashes[in.File] = in.SHA256
	}
	for _, v := range plan.Parents {
		for _, sh := range v.Shards() {
			got, ok := hashes[v.ShardName(sh)]
			if !ok || got == "" || sh.SHA256 == "" || got == sh.SHA256 {
				continue // not read as a source here, not hashed (a stored checksum), or nothing recorded
			}
			return fmt.Errorf("%s is damaged: its shard %s does not match the manifest (sha256 %.12s…, recorded %.12s…); 'sieve datasets verify %s' checks every shard",
				v.Ref, sh.Path, got, sh.SHA256, v.Ref)
		}
	}
	return nil
}
