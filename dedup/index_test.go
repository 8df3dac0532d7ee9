package dedup

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	minhashlsh "github.com/ekzhu/minhash-lsh"
)

func testIndexParams() IndexParams {
	c := DefaultTextConfig()
	b, r := OptimalBands(0.7, c.Perms(), DefaultFPWeight, DefaultFNWeight)
	return IndexParams{Text: c, Bands: b, Rows: r}
}

// indexFixture returns reference signatures of random sets and, for
// every third one, a query set at Jaccard ≈ 0.9 to it.
func indexFixture(t testing.TB, n int) (ids []string, sigs [][]uint64, queries map[string][]uint64) {
	h := testIndexParams().Text.NewHasher()
	r := rand.New(rand.NewPCG(8, 9))
	queries = map[string][]uint64{}
	for i := 0; i < n; i++ {
		a, b := randomPair(r, 190, 10, 10) // J = 190/210
		id := fmt.Sprintf("ref-%05d", i)
		ids = append(ids, id)
		sigs = append(sigs, h.Signature(a))
		if i%3 == 0 {
			queries[id] = h.Signature(b)
		}
	}
	return ids, sigs, queries
}

func TestIndexQuery(t *testing.T) {
	x, err := NewIndex(testIndexParams())
	if err != nil {
		t.Fatal(err)
	}
	ids, sigs, queries := indexFixture(t, 600)
	for i := range ids {
		if err := x.Add(ids[i], sigs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if x.Len() != 600 {
		t.Fatalf("Len %d", x.Len())
	}
	found := 0
	for id, q := range queries {
		got := x.Query(q)
		if !slices.IsSorted(got) {
			t.Fatalf("unsorted result %v", got)
		}
		if slices.Contains(got, id) {
			found++
		}
		// Query returns exactly the ids sharing a band key.
		var want []string
		qk := BandKeys(q, x.p.Bands, x.p.Rows)
		for i, s := range sigs {
			sk := BandKeys(s, x.p.Bands, x.p.Rows)
			for j := range sk {
				if sk[j] == qk[j] {
					want = append(want, ids[i])
					break
				}
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("query for %s: %v, want %v", id, got, want)
		}
		// Near verifies by estimated Jaccard.
		for _, m := range x.Near(q, 0.7) {
			s, _ := x.Signature(m.ID)
			if e := EstimateJaccard(q, s); e != m.Jaccard || e < 0.7 {
				t.Fatalf("Near match %v, estimate %v", m, e)
			}
		}
	}
	// At J ≈ 0.9 the banding finds nearly every partner.
	if found < len(queries)*97/100 {
		t.Errorf("found %d of %d near-duplicates", found, len(queries))
	}
	// An unrelated query finds nothing.
	r := rand.New(rand.NewPCG(1, 1))
	a, _ := randomPair(r, 0, 200, 0)
	if got := x.Query(x.p.Text.NewHasher().Signature(a)); got != nil {
		t.Errorf("unrelated query found %v", got)
	}
	// Errors.
	if err := x.Add(ids[0], sigs[0]); err == nil {
		t.Errorf("duplicate id accepted")
	}
	if err := x.Add("short", sigs[0][:5]); err == nil {
		t.Errorf("short signature accepted")
	}
	if _, err := NewIndex(IndexParams{Text: DefaultTextConfig(), Bands: 20, Rows: 7}); err == nil {
		t.Errorf("20 × 7 accepted for 128 permutations")
	}
}

func TestIndexSaveLoad(t *testing.T) {
	x, _ := NewIndex(testIndexParams())
	ids, sigs, queries := indexFixture(t, 300)
	for i := range ids {
		x.Add(ids[i], sigs[i])
	}
	x.Add("id with spaces and ünicode", sigs[0])
	// Entries with sets: a text and an edit of it.
	c := x.Params().Text
	var words []string
	for i := 0; i < 80; i++ {
		words = append(words, fmt.Sprintf("w%c%c", 'a'+i/26, 'a'+i%26)) // no digits: they fold
	}
	ta := strings.Join(words, " ")
	words[40] = "changed"
	tb := strings.Join(words, " ")
	sa, sb := c.Shingles(ta), c.Shingles(tb)
	h := c.NewHasher()
	if err := x.AddWithSet("with-set", h.Signature(sa), CompactSet(sa)); err != nil {
		t.Fatal(err)
	}
	x.AddWithSet("empty-set", sigs[1], nil)
	exact := ExactJaccard(sa, sb)
	check := func(ix *Index) {
		t.Helper()
		m := ix.NearExact(h.Signature(sb), CompactSet(sb), 0.0)
		i := slices.IndexFunc(m, func(m Match) bool { return m.ID == "with-set" })
		if i < 0 || m[i].Jaccard != exact || exact == 1 {
			t.Fatalf("NearExact %v, exact Jaccard %v", m, exact)
		}
	}
	check(x)
	var buf bytes.Buffer
	if err := x.Save(&buf); err != nil {
		t.Fatal(err)
	}
	data := buf.Bytes()
	y, err := LoadIndex(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if y.Len() != x.Len() || y.Params() != x.Params() {
		t.Fatalf("loaded %d entries with %+v", y.Len(), y.Params())
	}
	for id, q := range queries {
		if a, b := x.Query(q), y.Query(q); !slices.Equal(a, b) {
			t.Fatalf("query %s: %v before, %v after", id, a, b)
		}
	}
	check(y)
	s, ok := y.Signature("id with spaces and ünicode")
	if !ok || !slices.Equal(s, sigs[0]) {
		t.Fatalf("signature not restored")
	}
	// Saving the loaded index gives the same bytes.
	var again bytes.Buffer
	y.Save(&again)
	if !bytes.Equal(again.Bytes(), data) {
		t.Fatalf("save after load differs")
	}
	// Damaged files fail with an error, never a panic.
	for _, bad := range [][]byte{
		nil,
		[]byte("NOTSIEVE"),
		data[:len(data)-3],
		data[:30],
		append([]byte("SIEVEMHX\x02\x00\x00\x00"), data[12:]...),
	} {
		if _, err := LoadIndex(bytes.NewReader(bad)); err == nil {
			t.Errorf("damaged file of %d bytes loaded", len(bad))
		} else if !strings.HasPrefix(err.Error(), "dedup: load index:") {
			t.Errorf("error %q", err)
		}
	}
}

// TestIndexConcurrent runs queries while adding (the race detector
// checks the locking under go test -race).
func TestIndexConcurrent(t *testing.T) {
	x, _ := NewIndex(testIndexParams())
	ids, sigs, queries := indexFixture(t, 300)
	var qs [][]uint64
	for _, q := range queries {
		qs = append(qs, q)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range ids {
			x.Add(ids[i], sigs[i])
		}
	})
	for g := 0; g < 4; g++ {
		wg.Go(func() {
			for _, q := range qs {
				x.Query(q)
				x.Near(q, 0.5)
			}
		})
	}
	wg.Wait()
	if x.Len() != len(ids) {
		t.Fatalf("Len %d", x.Len())
	}
	seq, _ := NewIndex(testIndexParams())
	for i := range ids {
		seq.Add(ids[i], sigs[i])
	}
	for id, q := range queries {
		if a, b := x.Query(q), seq.Query(q); !slices.Equal(a, b) {
			t.Errorf("query %s after concurrent adds: %v, sequential %v", id, a, b)
		}
	}
}

// TestIndexMatchesEkzhu: with the banding ekzhu/minhash-lsh picks for
// itself, its index and this one return the same candidates.
func TestIndexMatchesEkzhu(t *testing.T) {
	const th = 0.7
	c := DefaultTextConfig()
	e := minhashlsh.NewMinhashLSH64(c.Perms(), th)
	rows, bands := e.Params()
	x, err := NewIndex(IndexParams{Text: c, Bands: bands, Rows: rows})
	if err != nil {
		t.Fatal(err)
	}
	ids, sigs, queries := indexFixture(t, 500)
	for i := range ids {
		x.Add(ids[i], sigs[i])
		e.Add(ids[i], sigs[i])
	}
	e.Index()
	for id, q := range queries {
		var want []string
		for _, k := range e.Query(q) {
			want = append(want, k.(string))
		}
		slices.Sort(want)
		if got := x.Query(q); !slices.Equal(got, want) {
			t.Errorf("query %s: %v, ekzhu %v", id, got, want)
		}
	}
}
