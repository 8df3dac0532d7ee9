package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"maps"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	beamlog "github.com/apache/beam/sdks/v2/go/pkg/beam/log"
	pipepb "github.com/apache/beam/sdks/v2/go/pkg/beam/model/pipeline_v1"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/pipelines"
	"github.com/sieve-data/sieve/pipelines/recipe"
)

// captureLog is a Beam logger that keeps every message.
type captureLog struct {
	mu   sync.Mutex
	msgs []string
}

func (c *captureLog) Log(_ context.Context, _ beamlog.Severity, _ int, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.msgs = append(c.msgs, msg)
}

// setFlags sets Beam's flags (flag.CommandLine) for the test and restores
// them after it.
func setFlags(t *testing.T, values map[string]string) {
	t.Helper()
	for name, v := range values {
		f := flag.Lookup(name)
		if f == nil {
			t.Fatalf("no flag --%s (is the Dataflow runner linked?)", name)
		}
		old := f.Value.String()
		if err := flag.Set(name, v); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { flag.Set(name, old) })
	}
}

// closedLoopback is a loopback address nothing listens on.
func closedLoopback(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestDataflowDryRunTranslatesEveryStage builds the demo recipe (sources
// on gs://, its LLM stages enabled: they are built, not called) and
// translates it into a Dataflow job with the Dataflow runner's dry run,
// offline: no credentials (GOOGLE_APPLICATION_CREDENTIALS names a
// missing file), the metadata server on a closed loopback port, GCS on
// the fake server. The job is a batch job of runner v2 (portable job
// submission: its graph is the pipeline proto the dry run logs), and
// every stage of the recipe, the read and the writes must be in that
// graph.
func TestDataflowDryRunTranslatesEveryStage(t *testing.T) {
	gcs := newFakeGCS(t, "bucket")
	gcs.uploadSamples(t, "bucket", "src/")
	t.Setenv("GOOGLE_APPLICATION_CREDENTIALS", filepath.Join(t.TempDir(), "missing.json"))
	t.Setenv("GCE_METADATA_HOST", closedLoopback(t))
	t.Setenv("GCE_METADATA_IP", closedLoopback(t))
	t.Setenv("SIEVE_DEMO_API_KEY", "unused") // the LLM stages are built; nothing calls them

	r, err := recipe.Load(gcsDemoRecipe(t, "gs://bucket/src/"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	plan, err := pipelines.NewPlan(ctx, r, datasets.Store{Root: "gs://bucket/store"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.SkipReasons) > 0 {
		t.Fatalf("stages skipped: %v", plan.SkipReasons)
	}
	p, stages, err := pipelines.Build(plan, "gs://bucket/store/demo/_staging/dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) != len(r.Stages) {
		t.Fatalf("pipeline stages %v; recipe has %d", stages, len(r.Stages))
	}

	setFlags(t, map[string]string{
		"dry_run":          "true",
		"project":          "sieve-test",
		"region":           "us-central1",
		"staging_location": "gs://bucket/staging",
		"temp_location":    "gs://bucket/tmp",
	})
	logs := &captureLog{}
	beamlog.SetLogger(logs)
	t.Cleanup(func() { beamlog.SetLogger(&beamlog.Structural{}) }) // Beam's default
	beam.Init()
	done := make(chan error, 1)
	go func() {
		_, err := beam.Run(ctx, "dataflow", p)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("dry run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("the dry run hangs (a credential or metadata look-up?)")
	}

	// The dry run logs the portable pipeline (the graph Dataflow's runner
	// v2 runs, staged as the job's model) and then the Dataflow job.
	var model pipepb.Pipeline
	var job struct {
		Name, ProjectID, Type string
		Environment           struct{ Experiments []string }
	}
	logs.mu.Lock()
	for _, msg := range logs.msgs {
		if len(model.GetComponents().GetTransforms()) == 0 && strings.HasPrefix(msg, "components:") {
			if err := prototext.Unmarshal([]byte(msg), &model); err != nil {
				t.Fatalf("the dry run's pipeline: %v", err)
			}
		}
		if strings.HasPrefix(msg, "{") && job.Type == "" {
			json.Unmarshal([]byte(msg), &job)
		}
	}
	logs.mu.Unlock()
	if len(model.GetComponents().GetTransforms()) == 0 || job.Type != "JOB_TYPE_BATCH" || job.ProjectID != "sieve-test" {
		t.Fatalf("no pipeline or no batch job among the dry run's log lines:\n%s", strings.Join(logs.msgs, "\n"))
	}
	if !slices.Contains(job.Environment.Experiments, "use_portable_job_submission") {
		t.Errorf("job experiments %v: the pipeline above is not the job's graph", job.Environment.Experiments)
	}

	// A stage is a scope of its own (ExactDedup, FuzzyDedup,
	// Synth_evol_instruct, …) or, for per-sample stages, one of the
	// stages a DoFn of Steps or ApplyTail runs (named in its payload).
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	scopes := map[string]bool{}
	var payloads [][]byte
	for _, tr := range model.GetComponents().GetTransforms() {
		scope, _, _ := strings.Cut(tr.GetUniqueName(), "/")
		scopes[norm(scope)] = true
		var pardo pipepb.ParDoPayload
		if scope != "Steps" && scope != "ApplyTail" {
			continue
		}
		if tr.GetSpec().GetUrn() == "beam:transform:pardo:v1" && proto.Unmarshal(tr.GetSpec().GetPayload(), &pardo) == nil {
			if b, err := base64.StdEncoding.DecodeString(string(pardo.GetDoFn().GetPayload())); err == nil {
				payloads = append(payloads, b)
			}
		}
	}
	for _, want := range append([]string{"Read", "WriteShards", "WriteRejected", "WriteDeadLetters"}, stages...) {
		found := false
		for scope := range scopes {
			found = found || strings.Contains(scope, norm(want))
		}
		for _, b := range payloads {
			found = found || bytes.Contains(b, []byte(`"`+want+`"`))
		}
		if !found {
			t.Errorf("stage %s is not in the Dataflow job's graph (scopes %v)", want, slices.Sorted(maps.Keys(scopes)))
		}
	}
	t.Logf("job %s: %d transforms for stages %v", job.Name, len(model.GetComponents().GetTransforms()), stages)
}
