package transforms

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/dedup"
)

// AgainstConfig is the step that drops samples near-duplicating a sample
// of a reference set (an earlier dataset version), looked up in saved
// MinHash-LSH indexes (dedup.Index) without re-processing the reference.
type AgainstConfig struct {
	// Indexes are index files; Refs the names reported for them
	// (NAME@vN).
	Indexes   []string      `json:"indexes"`
	Refs      []string      `json:"refs"`
	Threshold float64       `json:"threshold"`
	Mode      dedup.KeyMode `json:"mode"`
}

// IndexFile is the name of a version's saved MinHash-LSH index.
const IndexFile = "minhash.idx"

func init() {
	RegisterStep("fuzzy_against", func(spec StepSpec) (Step, error) {
		var cfg AgainstConfig
		if err := json.Unmarshal(spec.Config, &cfg); err != nil {
			return nil, err
		}
		st := &againstStep{stage: spec.Stage, cfg: cfg}
		for _, path := range cfg.Indexes {
			rc, err := datasets.Open(context.Background(), path)
			if err != nil {
				return nil, err
			}
			ix, err := dedup.LoadIndex(rc)
			rc.Close()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			st.indexes = append(st.indexes, ix)
			st.hashers = append(st.hashers, ix.Params().Text.NewHasher())
		}
		return st, nil
	})
}

type againstStep struct {
	stage   string
	cfg     AgainstConfig
	indexes []*dedup.Index
	hashers []dedup.Hasher
}

// KeepsIDs: againstStep never rewrites content.
func (*againstStep) KeepsIDs() {}

func (a *againstStep) Apply(_ context.Context, s *datasets.Sample) *datasets.Rejected {
	text := dedup.SampleText(s.Messages, a.cfg.Mode)
	for i, ix := range a.indexes {
		// Signers reuse buffers: one per call keeps Apply safe for
		// concurrent use.
		sh := ix.Params().Text.NewSigner().Shingles(text)
		if len(sh) == 0 {
			continue
		}
		sig := a.hashers[i].Signature(sh)
		if ms := ix.NearExact(sig, dedup.CompactSet(sh), a.cfg.Threshold); len(ms) > 0 {
			s.DupCluster = ms[0].ID
			return &datasets.Rejected{Stage: a.stage, Reason: "near_duplicate_of_reference", Survivor: ms[0].ID,
				Detail: fmt.Sprintf("Jaccard %.2f with %s sample %s", ms[0].Jaccard, a.cfg.Refs[i], ms[0].ID), Sample: *s}
		}
	}
	return nil
}
