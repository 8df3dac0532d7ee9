package topics

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/sieve-data/sieve/datasets"
)

func fitPlanted(t *testing.T, ss []datasets.Sample, cfg Config) *Model {
	t.Helper()
	m, err := Fit(context.Background(), ss, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func assignAll(t *testing.T, m *Model, ss []datasets.Sample) []int32 {
	t.Helper()
	out := make([]int32, len(ss))
	for i := range ss {
		a, err := m.AssignSample(&ss[i])
		if err != nil {
			t.Fatal(err)
		}
		if a.Distance < 0 || a.Distance > 2 || a.Topic < 0 || int(a.Topic) >= m.K {
			t.Fatalf("assignment %+v", a)
		}
		out[i] = a.Topic
	}
	return out
}

func TestPlantedTopicsRecovered(t *testing.T) {
	const k = 6
	ss, truth := plantedCorpus(k, 80, 1)
	m := fitPlanted(t, ss, Config{KMeans: KMeansConfig{K: k}, Seed: 7})
	labels := assignAll(t, m, ss)
	p, a, n := purity(labels, truth), ari(labels, truth), nmi(labels, truth)
	rl := randomLabels(len(ss), k, 3)
	t.Logf("planted %d topics × 80: purity %.3f, ARI %.3f, NMI %.3f (random assignment: purity %.3f, ARI %.3f)",
		k, p, a, n, purity(rl, truth), ari(rl, truth))
	if p < 0.95 || a < 0.9 {
		t.Fatalf("purity %.3f, ARI %.3f: want ≥ 0.95 and ≥ 0.9", p, a)
	}
	// Each topic's label comes from its own vocabulary.
	for _, tp := range m.Topics {
		if len(tp.Keywords) != 10 || strings.Count(tp.Label, " · ") != 2 || len(tp.Representatives) != 5 {
			t.Fatalf("topic %+v", tp)
		}
		own := -1
		for v, words := range plantedVocab[:k] {
			if slices.Contains(words, tp.Keywords[0].Word) {
				own = v
			}
		}
		if own < 0 {
			t.Fatalf("topic %d label %q is not from a planted vocabulary", tp.ID, tp.Label)
		}
		for _, kw := range tp.Keywords[:3] {
			if !slices.Contains(plantedVocab[own], kw.Word) {
				t.Fatalf("topic %d label %q mixes vocabularies", tp.ID, tp.Label)
			}
		}
	}
}

func TestSilhouettePicksPlantedK(t *testing.T) {
	for _, k := range []int{3, 5, 7} {
		ss, _ := plantedCorpus(k, 50, uint64(k))
		m := fitPlanted(t, ss, Config{KMeans: KMeansConfig{KMin: 2, KMax: 9}, Seed: 1})
		var sc []string
		for _, c := range m.Fit.Candidates {
			sc = append(sc, strings.TrimRight(strings.TrimRight(strings.Replace(
				strings.Join([]string{itoa(c.K), ftoa(c.Silhouette)}, ":"), " ", "", -1), "0"), "."))
		}
		t.Logf("planted k=%d: chose %d; silhouettes %s", k, m.K, strings.Join(sc, " "))
		if m.K != k {
			t.Fatalf("planted %d topics, silhouette chose %d", k, m.K)
		}
	}
}

func TestFitDeterministic(t *testing.T) {
	ss, _ := plantedCorpus(4, 60, 2)
	cfg := Config{KMeans: KMeansConfig{KMin: 2, KMax: 6}, Seed: 42, MaxSamples: 200}
	var a, b bytes.Buffer
	if err := fitPlanted(t, ss, cfg).Save(&a); err != nil {
		t.Fatal(err)
	}
	// Another input order: the same sample is chosen and the same model
	// comes out, byte for byte.
	shuffled := slices.Clone(ss)
	rand.New(rand.NewPCG(9, 9)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if err := fitPlanted(t, shuffled, cfg).Save(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatalf("two fits of one sample set differ (%d and %d bytes)", a.Len(), b.Len())
	}
	// One CPU or several: the same bytes.
	prev := runtime.GOMAXPROCS(1)
	var c bytes.Buffer
	err := fitPlanted(t, ss, cfg).Save(&c)
	runtime.GOMAXPROCS(prev)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("the fit on one CPU differs")
	}
	m, _ := Load(bytes.NewReader(a.Bytes()))
	if m.Fit.Samples != 200 {
		t.Fatalf("fit on %d samples, want 200", m.Fit.Samples)
	}
}

func TestSaveLoadAssignsIdentically(t *testing.T) {
	ss, truth := plantedCorpus(5, 60, 3)
	m := fitPlanted(t, ss, Config{KMeans: KMeansConfig{K: 5}, Seed: 3})
	var buf bytes.Buffer
	if err := m.Save(&buf); err != nil {
		t.Fatal(err)
	}
	t.Logf("model: %d bytes of JSON (%d features × %d dims)", buf.Len(), len(m.TFIDF.Features), m.Dim)
	m2, err := Load(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// Later samples (a new draw) and the fit samples.
	later, ltruth := plantedCorpus(5, 40, 33)
	all := append(slices.Clone(ss), later...)
	for i := range all {
		a1, _ := m.AssignSample(&all[i])
		a2, err := m2.AssignSample(&all[i])
		if err != nil || a1 != a2 {
			t.Fatalf("sample %d: %+v before saving, %+v after loading (%v)", i, a1, a2, err)
		}
	}
	// The later draw lands in the topics of its vocabulary.
	if p := purity(assignAll(t, m2, later), ltruth); p < 0.95 {
		t.Fatalf("later samples: purity %.3f", p)
	}
	if p := purity(assignAll(t, m2, ss), truth); p < 0.95 {
		t.Fatalf("fit samples: purity %.3f", p)
	}
	// A broken model is refused.
	var again bytes.Buffer
	if err := m.Save(&again); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(again.Bytes(), []byte(`"k":5,`), []byte(`"k":6,`), 1)
	if bytes.Equal(bad, again.Bytes()) {
		t.Fatal("no k in the saved model")
	}
	if _, err := Load(bytes.NewReader(bad)); err == nil {
		t.Fatal("a model with k=6 and 5 centroids loaded")
	}
}

func TestAssignVectorProperties(t *testing.T) {
	ss, _ := plantedCorpus(3, 30, 4)
	m := fitPlanted(t, ss, Config{KMeans: KMeansConfig{K: 3}})
	c1 := slices.Clone(m.Centroids[m.Dim : 2*m.Dim])
	for i := range c1 {
		c1[i] *= 3 // scale does not matter
	}
	a, err := m.AssignVector(c1)
	if err != nil || a.Topic != 1 || a.Distance > 1e-5 {
		t.Fatalf("centroid 1 assigned %+v %v", a, err)
	}
	var s datasets.Sample
	m.Annotate(&s, a)
	if s.TopicID == nil || *s.TopicID != 1 || s.TopicLabel != m.Topics[1].Label {
		t.Fatalf("annotated %v %q", s.TopicID, s.TopicLabel)
	}
	// The distance to the centroid goes into the sample (the shards'
	// topic_distance column).
	far := m.Centroids[m.Dim : 2*m.Dim]
	b, _ := m.AssignVector(append(slices.Clone(far[:m.Dim-1]), far[m.Dim-1]+1))
	m.Annotate(&s, b)
	if s.TopicDistance == nil || *s.TopicDistance != b.Distance || b.Distance == 0 {
		t.Fatalf("annotated distance %v, assigned %+v", s.TopicDistance, b)
	}
	if _, err := m.AssignVector(make([]float32, m.Dim+1)); err == nil {
		t.Fatal("wrong length accepted")
	}
	if a, _ := m.AssignVector(make([]float32, m.Dim)); a.Topic != 0 || a.Distance != 1 {
		t.Fatalf("zero vector %+v", a)
	}
}

func TestRandomizedSVDAgainstDense(t *testing.T) {
	// A sparse 120×80 matrix of exact rank 6 (product of sparse factors
	// of small integers, so float32 holds it exactly), and one of full
	// rank.
	rng := rand.New(rand.NewPCG(5, 5))
	const n, f, r = 120, 80, 6
	u := mat.NewDense(n, r, nil)
	v := mat.NewDense(r, f, nil)
	for i := range n {
		for j := range r {
			if rng.Float64() < 0.4 {
				u.Set(i, j, float64(rng.IntN(7)-3))
			}
		}
	}
	for i := range r {
		for j := range f {
			if rng.Float64() < 0.3 {
				v.Set(i, j, float64(rng.IntN(7)-3))
			}
		}
	}
	var low mat.Dense
	low.Mul(u, v)
	noisy := mat.DenseCopyOf(&low)
	for i := range n {
		for j := range f {
			if rng.Float64() < 0.2 {
				noisy.Set(i, j, noisy.At(i, j)+0.05*rng.NormFloat64())
			}
		}
	}
	for _, tc := range []struct {
		name  string
		a     *mat.Dense
		k     int
		tolSV float64
	}{{"rank 6", &low, r, 1e-10}, {"rank 6 + noise", noisy, r, 1e-6}} {
		a := toCSR(tc.a)
		dense := mat.DenseCopyOf(tc.a)
		// The float32 values the CSR holds, centred.
		mu := make([]float64, f)
		for i := range n {
			for j := range f {
				x := float64(float32(dense.At(i, j)))
				dense.Set(i, j, x)
				mu[j] += x / n
			}
		}
		for i := range n {
			for j := range f {
				dense.Set(i, j, dense.At(i, j)-mu[j])
			}
		}
		res, err := randomizedSVD(a, mu, tc.k, 10, 4, 1)
		if err != nil {
			t.Fatal(err)
		}
		var svd mat.SVD
		if !svd.Factorize(dense, mat.SVDThin) {
			t.Fatal("dense SVD failed")
		}
		want := svd.Values(nil)
		var vd mat.Dense
		svd.VTo(&vd)
		for i := range tc.k {
			if d := math.Abs(res.S[i]-want[i]) / want[0]; d > tc.tolSV {
				t.Fatalf("%s: σ%d = %.10g, dense %.10g (rel. error %.2g)", tc.name, i, res.S[i], want[i], d)
			}
			// Same singular vector up to sign (the spectrum is simple).
			var c float64
			for j := range f {
				c += res.V.At(j, i) * vd.At(j, i)
			}
			if math.Abs(math.Abs(c)-1) > 1e3*tc.tolSV {
				t.Fatalf("%s: vector %d: |cos| %.10f with the dense one", tc.name, i, math.Abs(c))
			}
		}
		if tc.name == "rank 6" {
			// A_c·V·V' reconstructs the centred low-rank matrix.
			var av, rec, diff mat.Dense
			av.Mul(dense, res.V)
			rec.Mul(&av, res.V.T())
			diff.Sub(dense, &rec)
			if e := mat.Norm(&diff, 2) / mat.Norm(dense, 2); e > 1e-9 {
				t.Fatalf("reconstruction error %.3g", e)
			}
		}
	}
}

func toCSR(d *mat.Dense) *csr {
	n, f := d.Dims()
	a := &csr{n: n, f: f, ptr: make([]int, n+1)}
	for i := range n {
		for j := range f {
			if x := d.At(i, j); x != 0 {
				a.col = append(a.col, int32(j))
				a.val = append(a.val, float32(x))
			}
		}
		a.ptr[i+1] = len(a.col)
	}
	return a
}

func TestTFIDFEmbedder(t *testing.T) {
	ss, _ := plantedCorpus(4, 40, 6)
	texts := make([]string, len(ss))
	for i := range ss {
		texts[i] = FieldPrompt.Text(&ss[i])
	}
	e, err := FitTFIDF(context.Background(), texts, TFIDFConfig{Dim: 16}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if e.Dim() != 16 || len(e.Basis) != 16*len(e.Features) {
		t.Fatalf("dim %d, basis %d for %d features", e.Dim(), len(e.Basis), len(e.Features))
	}
	vs, err := e.Embed(context.Background(), []string{texts[0], strings.ToUpper(texts[0]), texts[1], "", "zzzz qqqq"})
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		var ss float64
		for _, x := range v {
			ss += float64(x) * float64(x)
		}
		if math.Abs(ss-1) > 1e-4 {
			t.Fatalf("embedding %d has |v|² = %v", i, ss)
		}
	}
	if s := dot(vs[0], vs[1]); s < 0.9999 {
		t.Fatalf("case changes the embedding: cos %v", s)
	}
	// Too few texts or features.
	if _, err := FitTFIDF(context.Background(), texts[:2], TFIDFConfig{}, 1); err == nil {
		t.Fatal("fit on 2 texts")
	}
	if _, err := FitTFIDF(context.Background(), []string{"a", "b", "c"}, TFIDFConfig{}, 1); err == nil {
		t.Fatal("fit without features")
	}
}

func TestFieldText(t *testing.T) {
	s := datasets.Sample{Messages: []datasets.Message{
		{Role: "system", Content: "sys"}, {Role: "user", Content: "q1"}, {Role: "assistant", Content: "a1"},
		{Role: "user", Content: "q2"}, {Role: "assistant", Content: "a2"}}}
	for f, want := range map[Field]string{"": "sys\nq1\nq2", FieldPrompt: "sys\nq1\nq2",
		FieldResponse: "a1\na2", FieldConversation: "sys\nq1\na1\nq2\na2"} {
		if got := f.Text(&s); got != want {
			t.Fatalf("%q: %q, want %q", f, got, want)
		}
	}
	if _, err := Fit(context.Background(), nil, Config{Field: "title"}); err == nil {
		t.Fatal("unknown field accepted")
	}
}

func TestClassTFIDF(t *testing.T) {
	a, b := WordCounts{}, WordCounts{}
	a.Add("Chicken soup: chicken, onions and the broth. 42 chickens!")
	b.Add("The soup of stars: nebula, nebula, comet.")
	if a["chicken"] != 2 || a["42"] != 0 || a["the"] != 0 || b["nebula"] != 2 {
		t.Fatalf("counts %v %v", a, b)
	}
	kw := ClassTFIDF([]WordCounts{a, b}, 3, 1)
	// Class a: 6 words (chicken×2, soup, onions, broth, chickens); b: 5
	// (soup, stars, nebula×2, comet); A = 11/2. chicken: 2/6·ln(1+5.5/2).
	want := 2.0 / 6 * math.Log(1+5.5/2)
	if kw[0][0].Word != "chicken" || math.Abs(kw[0][0].Score-want) > 1e-12 {
		t.Fatalf("class a: %+v, want chicken %.6f", kw[0], want)
	}
	if kw[1][0].Word != "nebula" || LabelOf(kw[1], 2) != "nebula · comet" {
		t.Fatalf("class b: %+v", kw[1])
	}
	// soup is in both classes: scored below the class's own words of the
	// same count.
	for _, k := range kw[1] {
		if k.Word == "soup" {
			t.Fatalf("shared word ranked in b's top 3: %+v", kw[1])
		}
	}
}
