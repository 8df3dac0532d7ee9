// Package datasets is sieve's ground floor: the canonical chat Sample every
// stage passes along, readers that normalise open instruction-data formats
// (alpaca, sharegpt, OpenAI messages, TRL prompt/completion, dolly, plain
// text) into it, the Parquet shard writer and reader, and the dataset
// manifest.
//
// Nothing here knows about Beam: the Beam wrappers live in package
// transforms. Every function is usable from plain Go and tests.
//
// A Sample's ID is derived from its content alone (roles and message
// texts), so the same conversation gets the same ID in every run, every
// version and every dataset; two byte-identical conversations share an ID
// and are told apart by their Source.
package datasets

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Roles of a chat message. Readers map every format's own spellings
// (human, gpt, bot, model, …) onto these three.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role" parquet:"role"`
	Content string `json:"content" parquet:"content"`
}

// Source says where a sample came from: the recipe's source name, the file
// and the zero-based record index inside that file (the line number minus
// one for JSONL, the element index for JSON arrays, the row for Parquet).
type Source struct {
	Dataset string `json:"dataset"`
	File    string `json:"file"`
	Index   int64  `json:"index"`
}

// Sample is the canonical record of sieve: one conversation plus what the
// pipeline learned about it. Fields after License are filled by later
// stages and are zero (and null in Parquet) until then.
type Sample struct {
	ID       string    `json:"id"`
	Messages []Message `json:"messages"`
	Source   Source    `json:"source"`
	License  string    `json:"license,omitempty"`

	// DupCluster is the ID of the surviving sample of this sample's
	// duplicate cluster (set on survivors of non-trivial clusters and on
	// dropped duplicates).
	DupCluster string `json:"dup_cluster,omitempty"`
	// Quality is a heuristic quality score in [0, 1], nil when unscored.
	Quality *float64 `json:"quality,omitempty"`
	// JudgeScore is the aggregated LLM-judge score, nil when unjudged.
	JudgeScore *float64 `json:"judge_score,omitempty"`
	// Judge holds the judge verdicts as JSON (rubric, per-criterion
	// scores, model, rationale), empty when unjudged.
	Judge string `json:"judge,omitempty"`
	// TopicID is the topic cluster, nil when unclustered.
	TopicID    *int32 `json:"topic_id,omitempty"`
	TopicLabel string `json:"topic_label,omitempty"`
	// TopicDistance is the cosine distance (1 − cos, in [0, 2]) of the
	// sample's embedding to its topic's centroid, nil when unclustered.
	TopicDistance *float32 `json:"topic_distance,omitempty"`
	// Meta is free-form provenance as a JSON object (synthesis task,
	// model, prompt template hash, …); empty when there is none.
	Meta string `json:"meta,omitempty"`
}

// ContentID returns the content-derived ID of a conversation: the first 16
// bytes of SHA-256 over its roles and contents, hex encoded (32 characters).
// Each message contributes its role, a 0 byte, its content and a 0xff
// byte, so no two different conversations share an encoding.
func ContentID(msgs []Message) string {
	h := sha256.New()
	sep := []byte{0}
	end := []byte{0xff}
	for _, m := range msgs {
		h.Write(stringBytes(m.Role))
		h.Write(sep)
		h.Write(stringBytes(m.Content))
		h.Write(end)
	}
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0])[:16])
}

// stringBytes views a string's bytes without copying, for hash writes
// (which never retain or modify what they are given).
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// Less orders samples totally: by ID, then by source dataset, file and
// index. Every "pick one" decision in sieve (dedup survivors, shard order)
// uses it, so results never depend on arrival order.
func Less(a, b *Sample) bool {
	if a.ID != b.ID {
		return a.ID < b.ID
	}
	if a.Source.Dataset != b.Source.Dataset {
		return a.Source.Dataset < b.Source.Dataset
	}
	if a.Source.File != b.Source.File {
		return a.Source.File < b.Source.File
	}
	return a.Source.Index < b.Source.Index
}

// Prompt returns the non-assistant turns (system and user), the part of a
// conversation a model is conditioned on.
func (s *Sample) Prompt() []Message {
	out := make([]Message, 0, len(s.Messages))
	for _, m := range s.Messages {
		if m.Role != RoleAssistant {
			out = append(out, m)
		}
	}
	return out
}

// Validate checks the invariants every Sample leaving a reader satisfies:
// at least one message and one assistant turn, known roles, valid UTF-8,
// no empty contents, and an ID that matches the content. Failures are
// *DecodeError values whose Reason names the defect.
func (s *Sample) Validate() error {
	if err := s.validateContent(); err != nil {
		return err
	}
	if s.ID != ContentID(s.Messages) {
		return fmt.Errorf("id %q does not match content", s.ID)
	}
	return nil
}

// validateContent is Validate without the id check.
func (s *Sample) validateContent() error {
	if len(s.Messages) == 0 {
		return decErr("empty conversation", "no messages")
	}
	assistant := false
	for i, m := range s.Messages {
		switch m.Role {
		case RoleSystem, RoleUser:
		case RoleAssistant:
			assistant = true
		default:
			return decErr("unknown role", "message %d: %q", i, m.Role)
		}
		if !utf8.ValidString(m.Content) {
			return decErr("invalid utf-8", "message %d", i)
		}
		if strings.TrimSpace(m.Content) == "" {
			return decErr("empty content", "message %d (%s)", i, m.Role)
		}
	}
	if !assistant {
		return decErr("no assistant turn", "%d messages, none from the assistant", len(s.Messages))
	}
	return nil
}
