package datasets

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// ManifestFormat identifies the manifest layout; see docs/manifest.md.
const ManifestFormat = "sieve.manifest/v1"

// Manifest describes one dataset version: what went in, what each stage
// did, and every shard that came out. It is written last, so a version
// directory without one is not a version.
type Manifest struct {
	Format    string   `json:"format"`
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	ContentID string   `json:"content_id,omitempty"`
	Parents   []string `json:"parents,omitempty"`
	// ParentContentIDs records each parent's content id as it was when
	// this version was built, so a name that later holds other data is
	// not taken for the parent (see Store.CheckParents).
	ParentContentIDs []ParentRef `json:"parent_content_ids,omitempty"`
	CreatedAt        string      `json:"created_at"`
	Sieve            string      `json:"sieve_version"`
	// SieveBuild identifies the code that built the version: sieve's
	// version, the VCS revision, and for a build from a modified tree
	// the binary's build id (part of the content id).
	SieveBuild string          `json:"sieve_build,omitempty"`
	Runner     string          `json:"runner"`
	Recipe     json.RawMessage `json:"recipe"`
	// Skipped lists stages of the recipe that did not run, and why.
	Skipped []string `json:"skipped,omitempty"`
	Inputs  []Input  `json:"inputs"`
	Schema  []Column `json:"schema"`
	Splits  []Split  `json:"splits"`
	Funnel  Funnel   `json:"funnel"`
	// DeadLetters and Rejected are paths relative to the version
	// directory of the JSONL files holding dead letters and rejected
	// samples.
	DeadLetters string `json:"dead_letters"`
	Rejected    string `json:"rejected"`
	Totals      Totals `json:"totals"`
	// Mix is the target and achieved share of each source when the
	// recipe mixes sources by weight or caps them.
	Mix []MixEntry `json:"mix,omitempty"`
	// LLM is what each model endpoint did for the run: calls, cache hits,
	// tokens and cost (never keys).
	LLM []LLMUsage `json:"llm,omitempty"`
	// Stopped lists generation stages that stopped before the end (the
	// budget was spent, the endpoint failed for good), and why.
	Stopped []string `json:"stopped,omitempty"`
	// ShuffleBytes is what the run's groupings took in (keys and values,
	// counted by the pipeline itself; see transforms.ShuffleMeter), for
	// monitoring: it depends on the runner and its bundling, and is not
	// part of the content id.
	ShuffleBytes *int64 `json:"shuffle_bytes,omitempty"`
	// Shuffle is ShuffleBytes by grouping (named by stage).
	Shuffle map[string]int64 `json:"shuffle,omitempty"`
}

// ParentRef is a parent version and its content id.
type ParentRef struct {
	Ref       string `json:"ref"`
	ContentID string `json:"content_id"`
}

// AddParent records a parent version (NAME@vN) and its content id.
func (m *Manifest) AddParent(ref, contentID string) {
	m.Parents = append(m.Parents, ref)
	m.ParentContentIDs = append(m.ParentContentIDs, ParentRef{Ref: ref, ContentID: contentID})
}

// ParentContentID returns the content id recorded for a parent, if any
// (manifests made before parent_content_ids record none).
func (m *Manifest) ParentContentID(ref string) (string, bool) {
	for _, p := range m.ParentContentIDs {
		if p.Ref == ref {
			return p.ContentID, true
		}
	}
	return "", false
}

// LLMUsage is one endpoint's usage in a run. Tokens and cost count what
// was paid; answers from the response cache count in CachedCalls and
// CachedTokens only.
type LLMUsage struct {
	Endpoint         string  `json:"endpoint"`
	Model            string  `json:"model"`
	Calls            int64   `json:"calls"`
	CachedCalls      int64   `json:"cached_calls"`
	Requests         int64   `json:"requests"`
	Retries          int64   `json:"retries"`
	Failures         int64   `json:"failures"`
	BudgetRefusals   int64   `json:"budget_refusals"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	TotalTokens      int64   `json:"total_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	Cost             float64 `json:"cost"`
}

// MixEntry is one source's part of the mix.
type MixEntry struct {
	Source    string  `json:"source"`
	Weight    float64 `json:"weight,omitempty"`
	Available int64   `json:"available"`
	Target    int64   `json:"target"`
	Achieved  int64   `json:"achieved"`
}

// Input is one file read.
type Input struct {
	Source string `json:"source"`
	File   string `json:"file"`
	Format string `json:"format"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256,omitempty"`
	// Checksum is what an object store keeps of the file, used instead of
	// SHA256 for files not read at plan time: "gcs:crc32c=…,generation=…,md5=…".
	Checksum string `json:"checksum,omitempty"`
	Records  int64  `json:"records"`
	Samples  int64  `json:"samples"`
	Dead     int64  `json:"dead_letters"`
}

// Column is one column of the shards' schema.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// Split is one split (train, test) and its shards in order.
type Split struct {
	Name   string      `json:"name"`
	Rows   int64       `json:"rows"`
	Bytes  int64       `json:"bytes"`
	Shards []Shard     `json:"shards"`
	Stats  LengthStats `json:"length_stats"`
}

// Shard is one Parquet file of a split.
type Shard struct {
	Path   string `json:"path"` // relative to the version directory
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Totals sum the splits.
type Totals struct {
	Rows   int64 `json:"rows"`
	Bytes  int64 `json:"bytes"`
	Shards int   `json:"shards"`
}

// Count is a number of records for one reason.
type Count struct {
	Reason string `json:"reason"`
	Count  int64  `json:"count"`
}

// StageFunnel is what one stage received, dropped by reason, and passed on.
type StageFunnel struct {
	Stage string `json:"stage"`
	In    int64  `json:"in"`
	// Generated counts the candidates a generation stage made, kept or
	// dropped (Out = In + Generated − dropped).
	Generated int64 `json:"generated,omitempty"`
	// Failed counts a generation stage's calls that failed (retries ran
	// out, the server refused the request): no candidate was made, so
	// they are neither generated nor dropped. rejected.jsonl keeps them,
	// with reason synth.llm_error and the error.
	Failed  int64   `json:"failed,omitempty"`
	Out     int64   `json:"out"`
	Dropped []Count `json:"dropped"`
	// Modified counts what a stage changed without dropping, e.g. PII
	// redactions by kind (from the runner's counters).
	Modified []Count `json:"modified,omitempty"`
}

// Funnel accounts for every record read and every sample generated:
// Read + Generated = Written + the sum of all stages' drops +
// DeadLettered.
type Funnel struct {
	Read int64 `json:"read"`
	// Generated is the sum of the stages' Generated.
	Generated    int64         `json:"generated,omitempty"`
	DeadLettered int64         `json:"dead_lettered"`
	DeadReasons  []Count       `json:"dead_letter_reasons"`
	Stages       []StageFunnel `json:"stages"`
	Written      int64         `json:"written"`
}

// Check verifies the funnel adds up, stage by stage and overall.
func (f *Funnel) Check() error {
	var dead int64
	for _, c := range f.DeadReasons {
		dead += c.Count
	}
	if dead != f.DeadLettered {
		return fmt.Errorf("funnel: dead-letter reasons sum to %d, want %d", dead, f.DeadLettered)
	}
	in := f.Read - f.DeadLettered
	var dropped, generated int64
	for _, s := range f.Stages {
		if s.In != in {
			return fmt.Errorf("funnel: stage %s received %d samples, previous stage passed %d", s.Stage, s.In, in)
		}
		var d int64
		for _, c := range s.Dropped {
			d += c.Count
		}
		if s.In+s.Generated-d != s.Out {
			return fmt.Errorf("funnel: stage %s: in %d + generated %d - dropped %d != out %d", s.Stage, s.In, s.Generated, d, s.Out)
		}
		dropped += d
		generated += s.Generated
		in = s.Out
	}
	if generated != f.Generated {
		return fmt.Errorf("funnel: stages generated %d, total says %d", generated, f.Generated)
	}
	if f.Read+f.Generated != f.Written+dropped+f.DeadLettered {
		return fmt.Errorf("funnel: read %d + generated %d != written %d + dropped %d + dead-lettered %d", f.Read, f.Generated, f.Written, dropped, f.DeadLettered)
	}
	return nil
}

// WriteTable prints the funnel as an aligned table. What stages changed
// inside the records they passed on (Modified: PII findings redacted,
// samples scored) goes in a column of its own, "changes", since those are
// not records and do not add up with them.
func (f *Funnel) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Shares are of what entered the funnel: the records read, plus the
	// samples generated when a stage generated some (so no row passes
	// 100%).
	base, of := f.Read+f.Generated, "of read"
	if f.Generated > 0 {
		of = "of read+gen"
	}
	pct := func(n int64) string {
		if base == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(n)/float64(base))
	}
	changes := false
	for _, s := range f.Stages {
		changes = changes || len(s.Modified) > 0
	}
	if changes {
		fmt.Fprintf(tw, "stage\treason\trecords\t%s\tchanges\t\n", of)
	} else {
		fmt.Fprintf(tw, "stage\treason\trecords\t%s\t\n", of)
	}
	fmt.Fprintf(tw, "read\t\t%d\t%s\t\n", f.Read, pct(f.Read))
	for _, c := range f.DeadReasons {
		fmt.Fprintf(tw, "dead letter\t%s\t-%d\t%s\t\n", c.Reason, c.Count, pct(c.Count))
	}
	for _, s := range f.Stages {
		if s.Generated > 0 {
			fmt.Fprintf(tw, "%s\t(generated)\t+%d\t%s\t\n", s.Stage, s.Generated, pct(s.Generated))
		}
		if s.Failed > 0 {
			// Failed calls made no record: counted apart, not in the sums.
			fmt.Fprintf(tw, "%s\t%d failed calls\t-0\t\t\n", s.Stage, s.Failed)
		} else if len(s.Dropped) == 0 {
			fmt.Fprintf(tw, "%s\t(none)\t-0\t\t\n", s.Stage)
		}
		for _, c := range s.Modified {
			fmt.Fprintf(tw, "%s\t%s\t\t\t%d\t\n", s.Stage, c.Reason, c.Count)
		}
		for _, c := range s.Dropped {
			fmt.Fprintf(tw, "%s\t%s\t-%d\t%s\t\n", s.Stage, c.Reason, c.Count, pct(c.Count))
		}
	}
	fmt.Fprintf(tw, "written\t\t%d\t%s\t\n", f.Written, pct(f.Written))
	if err := tw.Flush(); err != nil {
		return err
	}
	if changes {
		_, err := fmt.Fprintln(w, "changes: findings redacted (pii.*) or samples scored inside records passed on; not records.")
		return err
	}
	return nil
}

// Summary is one line: "read 420 → written 371 (dropped 37, dead-lettered 12)".
func (f *Funnel) Summary() string {
	var dropped, failed int64
	for _, s := range f.Stages {
		for _, c := range s.Dropped {
			dropped += c.Count
		}
		failed += s.Failed
	}
	parts := []string{fmt.Sprintf("read %d", f.Read), fmt.Sprintf("written %d", f.Written)}
	if f.Generated > 0 {
		parts[0] += fmt.Sprintf(" + generated %d", f.Generated)
	}
	tail := fmt.Sprintf(" (dropped %d, dead-lettered %d", dropped, f.DeadLettered)
	if failed > 0 {
		tail += fmt.Sprintf("; %d generation calls failed", failed)
	}
	return strings.Join(parts, " → ") + tail + ")"
}

// ShardColumns is the shards' schema as recorded in manifests, in the
// types pyarrow and Hugging Face datasets show.
func ShardColumns() []Column {
	return []Column{
		{"id", "string"},
		{"messages", "list<struct<role: string, content: string>>"},
		{"source", "string"},
		{"source_file", "string"},
		{"source_index", "int64"},
		{"license", "string"},
		{"dup_cluster", "string (nullable)"},
		{"quality", "double (nullable)"},
		{"judge_score", "double (nullable)"},
		{"judge", "string (nullable)"},
		{"topic_id", "int32 (nullable)"},
		{"topic_label", "string (nullable)"},
		{"topic_distance", "float (nullable)"},
		{"meta", "string (nullable)"},
	}
}
