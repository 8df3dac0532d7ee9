package transforms

import (
	"reflect"
	"strings"

	"github.com/apache/beam/sdks/v2/go/pkg/beam"
	"github.com/apache/beam/sdks/v2/go/pkg/beam/register"
)

// ShuffleMeter counts the bytes that a pipeline's GroupByKeys take in:
// each grouping it makes (GroupByKey) passes its input through a
// counting DoFn that reports, per bundle, the bytes of the keys and
// values it saw, as "shuffle" report lines (Report.Counts by grouping
// name). It is how sieve measures what each stage shuffles per sample,
// on every runner alike; what a runner adds (encodings, windows) is not
// counted. The zero meter (or a nil one) groups without counting.
type ShuffleMeter struct {
	reports []beam.PCollection
}

func init() {
	register.DoFn4x0[beam.X, beam.Y, func(beam.X, beam.Y), func(string)](&shuffleCountFn{})
}

// GroupByKey is beam.GroupByKey of col, its input counted under name.
func (m *ShuffleMeter) GroupByKey(s beam.Scope, name string, col beam.PCollection) beam.PCollection {
	return beam.GroupByKey(s, m.Count(s, name, col))
}

// Count passes a keyed PCollection that a grouping will take in through
// the counter (for CoGroupByKey, count each input).
func (m *ShuffleMeter) Count(s beam.Scope, name string, col beam.PCollection) beam.PCollection {
	if m == nil {
		return col
	}
	counted, report := beam.ParDo2(s.Scope("Count"), &shuffleCountFn{Name: name}, col)
	m.reports = append(m.reports, report)
	return counted
}

// Reports are the meter's report lines (an empty PCollection when it
// counted nothing).
func (m *ShuffleMeter) Reports(s beam.Scope) beam.PCollection {
	cols := []beam.PCollection{beam.ParDo(s, dropEmpty, beam.Create(s.Scope("NoShuffle"), ""))}
	if m != nil {
		cols = append(cols, m.reports...)
	}
	return beam.Flatten(s, cols...)
}

// shuffleCountFn passes (key, value) pairs through and reports their
// bytes at the end of the bundle.
type shuffleCountFn struct {
	Name  string `json:"name"`
	bytes int64
	n     int64
}

func (f *shuffleCountFn) ProcessElement(k beam.X, v beam.Y, emit func(beam.X, beam.Y), _ func(string)) {
	f.bytes += elementBytes(k) + elementBytes(v)
	f.n++
	emit(k, v)
}

func (f *shuffleCountFn) FinishBundle(_ func(beam.X, beam.Y), report func(string)) error {
	if f.n == 0 {
		return nil
	}
	err := emitReport(report, Report{Kind: "shuffle", Counts: map[string]int64{f.Name: f.bytes, f.Name + ".elements": f.n}})
	f.bytes, f.n = 0, 0
	return err
}

// elementBytes is the payload size of a key or value: string and byte
// lengths, 8 for numbers, and for other types their encoded-ish size
// (the sum of their string and byte-slice fields), which is what the
// runner's coder writes apart from a few bytes of framing.
func elementBytes(x any) int64 {
	switch v := x.(type) {
	case string:
		return int64(len(v))
	case []byte:
		return int64(len(v))
	case int, int64, uint64, float64:
		return 8
	}
	return valueBytes(reflect.ValueOf(x))
}

func valueBytes(v reflect.Value) int64 {
	switch v.Kind() {
	case reflect.String:
		return int64(v.Len())
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return int64(v.Len())
		}
		var n int64
		for i := 0; i < v.Len(); i++ {
			n += valueBytes(v.Index(i))
		}
		return n
	case reflect.Struct:
		var n int64
		for i := 0; i < v.NumField(); i++ {
			n += valueBytes(v.Field(i))
		}
		return n
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return 0
		}
		return valueBytes(v.Elem())
	case reflect.Map:
		var n int64
		it := v.MapRange()
		for it.Next() {
			n += valueBytes(it.Key()) + valueBytes(it.Value())
		}
		return n
	case reflect.Invalid:
		return 0
	}
	return int64(v.Type().Size())
}

// shuffleLinePrefix starts every shuffle report line (Kind is Report's
// first field), which is how WriteReport sends them to ShuffleFile.
const shuffleLinePrefix = `{"kind":"shuffle"`

// ShuffleBytes sums the "shuffle" report lines' byte counts, in all and
// by grouping (ok false when there are none).
func ShuffleBytes(reports []Report) (total int64, byGrouping map[string]int64, ok bool) {
	byGrouping = map[string]int64{}
	for _, r := range reports {
		if r.Kind != "shuffle" {
			continue
		}
		ok = true
		for k, n := range r.Counts {
			if !strings.HasSuffix(k, ".elements") {
				total += n
				byGrouping[k] += n
			}
		}
	}
	return total, byGrouping, ok
}
