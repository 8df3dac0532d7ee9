package topics

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"testing"
)

func TestReport(t *testing.T) {
	ss, truth := plantedCorpus(5, 40, 31)
	m := fitPlanted(t, ss, Config{KMeans: KMeansConfig{K: 5}, Seed: 4})
	// Stats over the version gathered by two workers, merged, equal the
	// stats of one worker.
	all := make([]TopicStats, m.K)
	w1, w2 := make([]TopicStats, m.K), make([]TopicStats, m.K)
	var points []Point
	for i := range ss {
		v := m.TFIDF.EmbedText(FieldPrompt.Text(&ss[i]), nil)
		a, _ := m.AssignVector(v)
		all[a.Topic].Add(ss[i].ID, float64(a.Distance), 5)
		if i%2 == 0 {
			w1[a.Topic].Add(ss[i].ID, float64(a.Distance), 5)
		} else {
			w2[a.Topic].Add(ss[i].ID, float64(a.Distance), 5)
		}
		points = append(points, m.NewPoint(ss[i].ID, v, a))
	}
	for c := range w2 {
		w2[c].Merge(w1[c], 5)
	}
	if !reflect.DeepEqual(all, w2) {
		t.Fatalf("merged stats differ:\n%+v\n%+v", all, w2)
	}
	r, err := m.BuildReport(all, points)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || !reflect.DeepEqual(&back, r) {
		t.Fatalf("JSON round trip: %v", err)
	}
	if r.Total != int64(len(ss)) || len(r.Points) != len(ss) {
		t.Fatalf("total %d, %d points", r.Total, len(r.Points))
	}
	var share float64
	for _, tp := range r.Topics {
		share += tp.Share
		if tp.Label == "" || len(tp.Representatives) != 5 || tp.MeanDistance <= 0 || tp.MeanDistance >= 1 {
			t.Fatalf("topic %+v", tp)
		}
	}
	if math.Abs(share-1) > 1e-12 {
		t.Fatalf("shares sum to %v", share)
	}
	// On the map, a point is nearer its own centroid than the others, on
	// average.
	var own, other float64
	var nOwn, nOther int
	for _, p := range r.Points {
		for _, tp := range r.Topics {
			d := math.Hypot(p.X-tp.X, p.Y-tp.Y)
			if int32(tp.ID) == p.Topic {
				own += d
				nOwn++
			} else {
				other += d
				nOther++
			}
		}
	}
	t.Logf("2-D map: mean distance to own centroid %.3f, to others %.3f", own/float64(nOwn), other/float64(nOther))
	if own/float64(nOwn) >= 0.7*other/float64(nOther) {
		t.Fatal("the map does not separate the topics")
	}
	// Without stats the fit sample's are used.
	r0, _ := m.BuildReport(nil, nil)
	if r0.Total != int64(m.Fit.Samples) || r0.Points == nil {
		t.Fatalf("fit-sample report total %d", r0.Total)
	}
	if _, err := m.BuildReport(all[:2], nil); err == nil {
		t.Fatal("wrong number of stats accepted")
	}
	_ = truth
}
