// Package transforms wraps sieve's plain-Go algorithms as Apache Beam
// composites. Each composite follows one shape:
//
//	func Stage(s beam.Scope, in beam.PCollection, cfg Config) (kept, dropped beam.PCollection)
//
// where in and kept are PCollection<datasets.Sample> and dropped is
// PCollection<datasets.Rejected>, so that every record is accounted for in
// the run's funnel. Composites shuffle small keys (hashes, ids), never
// whole samples, except where a shard is assembled for writing, and they
// decide by total orders (smallest id), never by arrival, so output is the
// same whatever the runner's bundling.
//
// Every composite counts what it sees with Beam metrics under the
// namespace "sieve", so the funnel is visible in a runner's monitoring
// too.
package transforms

import (
	"reflect"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/sieve-data/sieve/datasets"
)

// Namespace of sieve's Beam metrics.
const Namespace = "sieve"

func init() {
	beam.RegisterCoder(reflect.TypeOf(datasets.Sample{}), encodeSample, decodeSample)
	beam.RegisterCoder(reflect.TypeOf(datasets.Rejected{}), encodeRejected, decodeRejected)
}

func encodeSample(s datasets.Sample) []byte { return s.AppendBinary(nil) }

func decodeSample(b []byte) (datasets.Sample, error) {
	var s datasets.Sample
	err := s.UnmarshalBinary(b)
	return s, err
}

func encodeRejected(r datasets.Rejected) []byte { return r.AppendBinary(nil) }

func decodeRejected(b []byte) (datasets.Rejected, error) {
	var r datasets.Rejected
	err := r.UnmarshalBinary(b)
	return r, err
}
