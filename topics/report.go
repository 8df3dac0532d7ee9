package topics

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
)

// Rep is a representative sample: its id and cosine distance to the
// centroid.
type Rep struct {
	ID       string  `json:"id"`
	Distance float64 `json:"distance"`
}

// TopicStats accumulates one topic's members: their count, the sum of
// their distances and the representatives closest to the centroid
// (distance ascending, then id; at most the max given to Add and Merge).
// Distances are summed in fixed point (units of 1e-9), so stats of
// several workers merge exactly into the same result whatever the order
// and a Beam combine can gather them.
type TopicStats struct {
	Count int64 `json:"count"`
	// SumDistanceNano is the sum of the members' distances in units of
	// 1e-9.
	SumDistanceNano int64 `json:"sum_distance_nano"`
	Reps            []Rep `json:"reps"`
}

// Add counts one member and keeps it among the maxReps closest.
func (s *TopicStats) Add(id string, dist float64, maxReps int) {
	s.Count++
	s.SumDistanceNano += int64(math.Round(dist * 1e9))
	s.Reps = keepClosest(append(s.Reps, Rep{ID: id, Distance: dist}), maxReps)
}

// Merge adds o into s.
func (s *TopicStats) Merge(o TopicStats, maxReps int) {
	s.Count += o.Count
	s.SumDistanceNano += o.SumDistanceNano
	s.Reps = keepClosest(append(s.Reps, o.Reps...), maxReps)
}

func keepClosest(r []Rep, n int) []Rep {
	slices.SortFunc(r, func(a, b Rep) int {
		if c := cmp.Compare(a.Distance, b.Distance); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return r[:min(n, len(r))]
}

// MeanDistance is the members' mean distance (0 without members).
func (s *TopicStats) MeanDistance() float64 {
	if s.Count == 0 {
		return 0
	}
	return float64(s.SumDistanceNano) / 1e9 / float64(s.Count)
}

// RepIDs are the representatives' ids, closest first (never nil).
func (s *TopicStats) RepIDs() []string {
	ids := make([]string, len(s.Reps))
	for i, r := range s.Reps {
		ids[i] = r.ID
	}
	return ids
}

// Point is one sample on the 2-D map.
type Point struct {
	ID       string  `json:"id"`
	Topic    int32   `json:"topic"`
	X        float64 `json:"x"`
	Y        float64 `json:"y"`
	Distance float32 `json:"distance"`
}

// NewPoint places an embedding assigned to a topic on the model's map.
func (m *Model) NewPoint(id string, v []float32, a Assignment) Point {
	x, y := m.Project(v)
	return Point{ID: id, Topic: a.Topic, X: x, Y: y, Distance: a.Distance}
}

// Report is what a page or a chart needs to show a version's topics:
// per-topic sizes over the whole version, labels, keywords,
// representatives and mean distances, the centroids and a sample of
// points on a 2-D map (the model's first two principal components of
// the fit sample's embeddings), and how k was chosen. It is plain data
// and serialises as JSON.
type Report struct {
	Version    int           `json:"version"`
	Field      Field         `json:"field"`
	Embedder   EmbedderSpec  `json:"embedder"`
	K          int           `json:"k"`
	Total      int64         `json:"total"`
	Silhouette float64       `json:"silhouette"`
	Candidates []KScore      `json:"candidates"`
	Topics     []TopicReport `json:"topics"`
	Points     []Point       `json:"points"`
}

// TopicReport is one topic of a Report.
type TopicReport struct {
	ID              int       `json:"id"`
	Label           string    `json:"label"`
	Name            string    `json:"name,omitempty"`
	Keywords        []Keyword `json:"keywords"`
	Size            int64     `json:"size"`
	Share           float64   `json:"share"`
	MeanDistance    float64   `json:"mean_distance"`
	Representatives []string  `json:"representatives"`
	// X and Y place the centroid on the map.
	X float64 `json:"x"`
	Y float64 `json:"y"`
}

// BuildReport puts the model's topics together with the stats gathered
// over a version (one per topic; nil uses the fit sample's sizes,
// distances and representatives) and a sample of points (sorted here by
// id).
func (m *Model) BuildReport(stats []TopicStats, points []Point) (*Report, error) {
	if stats != nil && len(stats) != m.K {
		return nil, fmt.Errorf("topics report: %d stats for %d topics", len(stats), m.K)
	}
	r := &Report{Version: m.Version, Field: m.Field, Embedder: m.Embedder, K: m.K,
		Silhouette: m.Fit.Silhouette, Candidates: m.Fit.Candidates, Topics: make([]TopicReport, m.K)}
	for c, t := range m.Topics {
		tr := TopicReport{ID: c, Label: t.Label, Name: t.Name, Keywords: t.Keywords,
			Size: int64(t.Size), MeanDistance: t.MeanDistance, Representatives: t.Representatives}
		if stats != nil {
			s := stats[c]
			tr.Size, tr.MeanDistance, tr.Representatives = s.Count, s.MeanDistance(), s.RepIDs()
		}
		tr.X, tr.Y = m.Project(m.Centroids[c*m.Dim : (c+1)*m.Dim])
		r.Total += tr.Size
		r.Topics[c] = tr
	}
	for c := range r.Topics {
		if r.Total > 0 {
			r.Topics[c].Share = float64(r.Topics[c].Size) / float64(r.Total)
		}
	}
	r.Points = slices.Clone(points)
	if r.Points == nil {
		r.Points = []Point{}
	}
	slices.SortFunc(r.Points, func(a, b Point) int { return cmp.Compare(a.ID, b.ID) })
	return r, nil
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("topics report: %w", err)
	}
	return nil
}
