package datasets

import (
	"math"
	"math/bits"
	"unicode/utf8"
)

// LengthStats summarise sample lengths in characters (Unicode code
// points): whole conversations, prompts (system and user turns) and
// responses (assistant turns). They merge exactly across shards.
type LengthStats struct {
	Samples  int64     `json:"samples"`
	Messages int64     `json:"messages"`
	Total    Histogram `json:"total_chars"`
	Prompt   Histogram `json:"prompt_chars"`
	Response Histogram `json:"response_chars"`
}

// Add counts one sample.
func (l *LengthStats) Add(s *Sample) {
	var p, r int64
	for _, m := range s.Messages {
		n := int64(utf8.RuneCountInString(m.Content))
		if m.Role == RoleAssistant {
			r += n
		} else {
			p += n
		}
	}
	l.Samples++
	l.Messages += int64(len(s.Messages))
	l.Total.Add(p + r)
	l.Prompt.Add(p)
	l.Response.Add(r)
}

// Merge adds o into l.
func (l *LengthStats) Merge(o *LengthStats) {
	l.Samples += o.Samples
	l.Messages += o.Messages
	l.Total.Merge(&o.Total)
	l.Prompt.Merge(&o.Prompt)
	l.Response.Merge(&o.Response)
}

// Histogram counts values in power-of-two buckets (bucket i holds values
// v with bits.Len64(v) == i) and keeps the exact count, sum, min and max.
type Histogram struct {
	Count   int64   `json:"count"`
	Sum     int64   `json:"sum"`
	Min     int64   `json:"min"`
	Max     int64   `json:"max"`
	Buckets []int64 `json:"log2_buckets"`
}

// Add counts a value ≥ 0.
func (h *Histogram) Add(v int64) {
	if v < 0 {
		v = 0
	}
	if h.Count == 0 || v < h.Min {
		h.Min = v
	}
	if v > h.Max {
		h.Max = v
	}
	h.Count++
	h.Sum += v
	b := bits.Len64(uint64(v))
	for len(h.Buckets) <= b {
		h.Buckets = append(h.Buckets, 0)
	}
	h.Buckets[b]++
}

// Merge adds o into h.
func (h *Histogram) Merge(o *Histogram) {
	if o.Count == 0 {
		return
	}
	if h.Count == 0 || o.Min < h.Min {
		h.Min = o.Min
	}
	if o.Max > h.Max {
		h.Max = o.Max
	}
	h.Count += o.Count
	h.Sum += o.Sum
	for len(h.Buckets) < len(o.Buckets) {
		h.Buckets = append(h.Buckets, 0)
	}
	for i, c := range o.Buckets {
		h.Buckets[i] += c
	}
}

// Mean is the average value (0 when empty).
func (h *Histogram) Mean() float64 {
	if h.Count == 0 {
		return 0
	}
	return float64(h.Sum) / float64(h.Count)
}

// Quantile estimates the q-quantile (0 ≤ q ≤ 1) by interpolating inside
// the bucket that holds it, clamped to [Min, Max].
func (h *Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return 0
	}
	rank := q * float64(h.Count)
	var seen float64
	for b, c := range h.Buckets {
		if c == 0 {
			continue
		}
		if seen+float64(c) >= rank {
			lo, hi := 0.0, 0.0
			if b > 0 {
				lo, hi = math.Ldexp(1, b-1), math.Ldexp(1, b)-1
			}
			v := lo + (hi-lo)*(rank-seen)/float64(c)
			return math.Max(float64(h.Min), math.Min(float64(h.Max), v))
		}
		seen += float64(c)
	}
	return float64(h.Max)
}
