package filters

import (
	"math/rand/v2"
	"testing"

	"github.com/sieve-data/sieve/bench/chatgen"
	"github.com/sieve-data/sieve/datasets"
)

// benchSamples returns n realistic conversations from chatgen, 2% of them
// with an e-mail address or phone number in the user turn so that the
// scrubber redacts something.
func benchSamples(n int) []*datasets.Sample {
	cfg := chatgen.Config{N: n, Seed: 42}
	r := rand.New(rand.NewPCG(1, 2))
	out := make([]*datasets.Sample, n)
	for i := range out {
		msgs, _ := chatgen.Record(cfg, i)
		s := &datasets.Sample{Messages: make([]datasets.Message, len(msgs))}
		for k, m := range msgs {
			s.Messages[k] = datasets.Message{Role: m.Role, Content: m.Content}
		}
		if r.IntN(50) == 0 {
			for k := range s.Messages {
				if s.Messages[k].Role == datasets.RoleUser {
					s.Messages[k].Content += " You can reach me at jane.roe@gmail.com or +44 20 7946 0958."
					break
				}
			}
		}
		s.ID = datasets.ContentID(s.Messages)
		out[i] = s
	}
	return out
}

// BenchmarkFilters runs the default filter set and PII scrubbing on one
// core; samples/s is the throughput per core.
func BenchmarkFilters(b *testing.B) {
	samples := benchSamples(5000)
	fs, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	sc, err := NewScrubber(PIIConfig{})
	if err != nil {
		b.Fatal(err)
	}
	var bytes int64
	for _, s := range samples {
		for _, m := range s.Messages {
			bytes += int64(len(m.Content))
		}
	}
	b.SetBytes(bytes / int64(len(samples)))
	b.ReportAllocs()
	b.ResetTimer()
	msgs := make([]datasets.Message, 0, 16)
	for i := 0; i < b.N; i++ {
		src := samples[i%len(samples)]
		msgs = append(msgs[:0], src.Messages...) // scrub a copy
		s := *src
		s.Messages = msgs
		sc.Scrub(&s)
		CheckAll(fs, &s)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}

// BenchmarkEach times each filter and the scrubber alone.
func BenchmarkEach(b *testing.B) {
	samples := benchSamples(2000)
	fs, _ := New(Config{})
	for _, f := range fs {
		b.Run(f.Name(), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				f.Check(samples[i%len(samples)])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
	sc, _ := NewScrubber(PIIConfig{})
	b.Run("pii", func(b *testing.B) {
		msgs := make([]datasets.Message, 0, 16)
		for i := 0; i < b.N; i++ {
			src := samples[i%len(samples)]
			s := *src
			s.Messages = append(msgs[:0], src.Messages...)
			sc.Scrub(&s)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "samples/s")
	})
}
