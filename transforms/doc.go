// Package transforms wraps sieve's plain-Go algorithms as Apache Beam
// transforms. A run has three kinds of stage:
//
//   - per-sample stages (filters, PII, decontamination, judges) are Steps,
//     described by StepSpecs and applied in batches by ApplySteps, or left
//     pending in the writers' tail (WriteConfig.Tail);
//   - whole-dataset stages (exact and fuzzy dedup) do not move samples:
//     they shuffle small keys (hashes, references) and return marks
//     (StageMarks), which travel as side inputs;
//   - the samples themselves are spilled once (Spill) into sorted runs
//     under the staging directory; later whole-dataset stages read them
//     back (Unspill) and the shard writers (WriteSpilled) merge each
//     shard's runs, apply the tail (marks, then pending steps) and write
//     Parquet.
//
// Every decision is taken by a total order (datasets.Less, smallest
// reference), never by arrival, so the output is the same whatever the
// runner's bundling. Every drop becomes a datasets.Rejected, so the run's
// funnel accounts for every record. Stages count what they see with Beam
// metrics under the namespace "sieve".
package transforms

import (
	"fmt"
	"reflect"

	"github.com/klauspost/compress/s2"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"

	"github.com/sieve-data/sieve/datasets"
)

// Namespace of sieve's Beam metrics.
const Namespace = "sieve"

func init() {
	beam.RegisterCoder(reflect.TypeOf(datasets.Sample{}), encodeSample, decodeSample)
	beam.RegisterCoder(reflect.TypeOf(datasets.Rejected{}), encodeRejected, decodeRejected)
}

// Samples cross the runner's data plane (and sit in its memory between
// stages) in their binary encoding, compressed with S2 when large: chat
// text shrinks 2-3x, which cuts the runner's copying and memory by as
// much, for about a gigabyte a second of CPU.
const (
	codecPlain  = 0
	codecS2     = 1
	compressMin = 512
)

func encodeSample(s datasets.Sample) []byte {
	return compressFrame(s.AppendBinary(make([]byte, 1, 256)))
}

func decodeSample(b []byte) (datasets.Sample, error) {
	var s datasets.Sample
	raw, err := decompressFrame(b)
	if err == nil {
		err = s.UnmarshalBinary(raw)
	}
	return s, err
}

func encodeRejected(r datasets.Rejected) []byte {
	return compressFrame(r.AppendBinary(make([]byte, 1, 256)))
}

func decodeRejected(b []byte) (datasets.Rejected, error) {
	var r datasets.Rejected
	raw, err := decompressFrame(b)
	if err == nil {
		err = r.UnmarshalBinary(raw)
	}
	return r, err
}

// compressFrame takes an encoding whose first byte is reserved and
// returns a frame: codecPlain + the encoding, or codecS2 + its S2 block.
func compressFrame(b []byte) []byte {
	if len(b) < compressMin {
		b[0] = codecPlain
		return b
	}
	out := make([]byte, 1+s2.MaxEncodedLen(len(b)-1))
	out[0] = codecS2
	enc := s2.Encode(out[1:], b[1:])
	return out[:1+len(enc)]
}

func decompressFrame(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("sample coder: empty frame")
	}
	switch b[0] {
	case codecPlain:
		return b[1:], nil
	case codecS2:
		return s2.Decode(nil, b[1:])
	}
	return nil, fmt.Errorf("sample coder: unknown frame type %d", b[0])
}
