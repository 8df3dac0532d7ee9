package dedup

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/internal/randtext"
)

func TestNormalize(t *testing.T) {
	c := DefaultTextConfig()
	for _, tc := range []struct{ in, want string }{
		{"Hello,  World!\n", "hello world"},
		{"  ticket #4711 (urgent)  ", "ticket 0000 urgent"},
		{"don't STOP—ever…", "don t stop ever"},
		{"Ｆｕｌｌ－ｗｉｄｔｈ ＡＢＣ １２３", "full width abc 000"}, // NFKC then folding
		{"ﬁne ligature", "fine ligature"},
		{"Ünïcödé\tTEXT", "ünïcödé text"},
		{"٣ apples", "0 apples"}, // Arabic-Indic digit
		{"...", ""},
		{"", ""},
	} {
		if got := c.Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Every switch off: the text is unchanged.
	var off TextConfig
	for _, s := range []string{"Hello,  World!\n", "Ｆｕｌｌ １２３", "a\t\tb"} {
		if got := off.Normalize(s); got != s {
			t.Errorf("all off: Normalize(%q) = %q", s, got)
		}
	}
	// Each switch alone.
	one := func(f func(*TextConfig)) TextConfig { var c TextConfig; f(&c); return c }
	for _, tc := range []struct {
		c       TextConfig
		in, out string
	}{
		{one(func(c *TextConfig) { c.Lowercase = true }), "AbC, 12", "abc, 12"},
		{one(func(c *TextConfig) { c.FoldDigits = true }), "AbC, 12", "AbC, 00"},
		{one(func(c *TextConfig) { c.FoldPunct = true }), "AbC, 12!", "AbC  12 "},
		{one(func(c *TextConfig) { c.CollapseWhitespace = true }), "  a \n\t b  ", "a b"},
		{one(func(c *TextConfig) { c.NFKC = true }), "Ａ１", "A1"},
	} {
		if got := tc.c.Normalize(tc.in); got != tc.out {
			t.Errorf("%+v: Normalize(%q) = %q, want %q", tc.c, tc.in, got, tc.out)
		}
	}
}

func TestTextConfigDefaultsAndDecode(t *testing.T) {
	var c TextConfig
	c.Defaults()
	if c != DefaultTextConfig() {
		t.Fatalf("Defaults() = %+v", c)
	}
	// Decoding over defaults keeps absent keys.
	if err := json.Unmarshal([]byte(`{"fold_digits": false, "n": 3}`), &c); err != nil {
		t.Fatal(err)
	}
	want := DefaultTextConfig()
	want.FoldDigits, want.N = false, 3
	if c != want {
		t.Fatalf("decoded %+v, want %+v", c, want)
	}
	// Zero values mean defaults for the sizes.
	var z TextConfig
	if z.NGram() != DefaultWordN || z.Perms() != DefaultNumPerm {
		t.Fatalf("zero config: n %d, perms %d", z.NGram(), z.Perms())
	}
	z.Shingle = ShingleChar
	if z.NGram() != DefaultCharN {
		t.Fatalf("char default n = %d", z.NGram())
	}
	for _, bad := range []TextConfig{{Shingle: "line"}, {Hasher: "simhash"}, {N: -1}, {NumPerm: -2}} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	if err := DefaultTextConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSampleText(t *testing.T) {
	msgs := []datasets.Message{
		{Role: "system", Content: "Be brief."},
		{Role: "user", Content: "What is 2+2?"},
		{Role: "assistant", Content: "4"},
	}
	if got := SampleText(msgs, KeyConversation); got != "Be brief.\nWhat is 2+2?\n4" {
		t.Errorf("conversation: %q", got)
	}
	if got := SampleText(msgs, KeyPrompt); got != "Be brief.\nWhat is 2+2?" {
		t.Errorf("prompt: %q", got)
	}
}

func TestShingles(t *testing.T) {
	c := DefaultTextConfig()
	c.N = 3
	s := c.Shingles("The quick brown fox jumps over the lazy dog")
	if len(s) != 9-3+1 {
		t.Fatalf("%d shingles, want 7", len(s))
	}
	if len(SortedSet(s)) != 7 {
		t.Fatalf("shingle hashes collide: %x", s)
	}
	// Normalisation makes these the same shingles.
	if got := c.Shingles("the QUICK, brown   fox! jumps over THE lazy dog."); !slices.Equal(got, s) {
		t.Fatalf("normalised variants differ")
	}
	// The same n-gram hashes the same wherever it stands.
	u := c.Shingles("quick brown fox")
	if len(u) != 1 || u[0] != s[1] {
		t.Fatalf("n-gram hash depends on context: %x vs %x", u, s[1])
	}
	// Word order matters.
	if v := c.Shingles("brown quick fox"); v[0] == u[0] {
		t.Fatalf("reordered n-gram has the same hash")
	}
	// Short and empty texts.
	if got := c.Shingles("two words"); len(got) != 1 {
		t.Fatalf("short text: %d shingles", len(got))
	}
	if got := c.Shingles("two words"); got[0] == c.Shingles("two")[0] {
		t.Fatalf("short texts collide")
	}
	if got := c.Shingles(" ?! "); len(got) != 0 {
		t.Fatalf("empty text: %d shingles", len(got))
	}
	// The seed changes every hash.
	c2 := c
	c2.Seed = 1
	if s2 := c2.Shingles("The quick brown fox jumps over the lazy dog"); s2[0] == s[0] {
		t.Fatalf("seed does not change hashes")
	}
	// Character shingles: n runes of the normalised text.
	cc := DefaultTextConfig()
	cc.Shingle, cc.N = ShingleChar, 4
	if got := cc.Shingles("Ab, cdé"); len(got) != len([]rune("ab cdé"))-4+1 {
		t.Fatalf("char shingles: %d", len(got))
	}
	if a, b := cc.Shingles("abcd"), cc.Shingles("ABCD!"); !slices.Equal(a, b) {
		t.Fatalf("char shingles not normalised")
	}
	if a, b := cc.Shingles("abcd"), cc.Shingles("abdc"); a[0] == b[0] {
		t.Fatalf("char order ignored")
	}
}

// randomPair returns two sets of random 64-bit values with a given
// intersection and sizes.
func randomPair(r *rand.Rand, inter, onlyA, onlyB int) (a, b []uint64) {
	for i := 0; i < inter; i++ {
		v := r.Uint64()
		a, b = append(a, v), append(b, v)
	}
	for i := 0; i < onlyA; i++ {
		a = append(a, r.Uint64())
	}
	for i := 0; i < onlyB; i++ {
		b = append(b, r.Uint64())
	}
	r.Shuffle(len(a), func(i, j int) { a[i], a[j] = a[j], a[i] })
	r.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
	return a, b
}

func hashers(k int, seed uint64) map[string]Hasher {
	return map[string]Hasher{
		HasherFast:  NewFastHasher(k, seed),
		HasherEkzhu: NewEkzhuHasher(k, seed),
	}
}

// TestSignatureUnbiased checks MinHash's estimate properties for both
// hashers over random pairs of sets of 1 to 1000 elements: mean absolute
// error below 0.03, mean error within ±0.01, and, per Jaccard level, a
// spread no wider than √(J(1−J)/k) allows.
func TestSignatureUnbiased(t *testing.T) {
	const k = 128
	for name, h := range hashers(k, 7) {
		t.Run(name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var absErr, sumErr float64
			const pairs = 3000
			for i := 0; i < pairs; i++ {
				u := 1 + r.IntN(1000)
				inter := r.IntN(u + 1)
				onlyA := r.IntN(u - inter + 1)
				a, b := randomPair(r, inter, onlyA, u-inter-onlyA)
				exact := ExactJaccard(a, b)
				est := EstimateJaccard(h.Signature(a), h.Signature(b))
				absErr += math.Abs(est - exact)
				sumErr += est - exact
			}
			mae, bias := absErr/pairs, sumErr/pairs
			t.Logf("%s: MAE %.4f, mean error %+.4f", name, mae, bias)
			if mae >= 0.03 {
				t.Errorf("MAE %.4f ≥ 0.03", mae)
			}
			if math.Abs(bias) > 0.01 {
				t.Errorf("mean error %+.4f outside ±0.01", bias)
			}
			// Spread at fixed J, for small (30), medium (200) and large
			// (2000) unions.
			for _, u := range []int{30, 200, 2000} {
				for _, j := range []float64{0.3, 0.5, 0.7, 0.9} {
					inter := int(math.Round(j * float64(u)))
					jx := float64(inter) / float64(u)
					const n = 300
					var ss, s float64
					for i := 0; i < n; i++ {
						a, b := randomPair(r, inter, (u-inter)/2, u-inter-(u-inter)/2)
						e := EstimateJaccard(h.Signature(a), h.Signature(b)) - jx
						s += e
						ss += e * e
					}
					sd := math.Sqrt(ss / n)
					theory := math.Sqrt(jx * (1 - jx) / k)
					// The sample rms of 300 draws is within 15% of its
					// true value with overwhelming probability.
					if sd > 1.15*theory {
						t.Errorf("u=%d J=%.2f: rms error %.4f > 1.15 × theory %.4f", u, jx, sd, theory)
					}
					if m := s / n; math.Abs(m) > 4*theory/math.Sqrt(n) {
						t.Errorf("u=%d J=%.2f: mean error %+.4f, more than 4 standard errors", u, jx, m)
					}
				}
			}
		})
	}
}

func TestSignatureBasics(t *testing.T) {
	for name, h := range hashers(64, 3) {
		r := rand.New(rand.NewPCG(5, 6))
		a, _ := randomPair(r, 0, 150, 0)
		s1 := h.Signature(a)
		if len(s1) != 64 {
			t.Fatalf("%s: %d values", name, len(s1))
		}
		// Order and repetition do not matter.
		b := slices.Clone(a)
		slices.Reverse(b)
		b = append(b, a[:40]...)
		if s2 := h.Signature(b); !slices.Equal(s1, s2) {
			t.Errorf("%s: signature depends on order or repetition", name)
		}
		// The caller owns the result.
		s1[0] = 42
		if s3 := h.Signature(a); s3[0] == 42 {
			t.Errorf("%s: signature slice is shared", name)
		}
		// A superset's signature is the element-wise minimum.
		x, y := a[:75], a[75:]
		sx, sy, sa := h.Signature(x), h.Signature(y), h.Signature(a)
		for i := range sa {
			if sa[i] != min(sx[i], sy[i]) {
				t.Fatalf("%s: signature of a union is not the minimum at %d", name, i)
			}
		}
		// Disjoint sets share (almost) nothing, equal sets everything.
		c, _ := randomPair(r, 0, 150, 0)
		if e := EstimateJaccard(h.Signature(a), h.Signature(c)); e > 0.05 {
			t.Errorf("%s: disjoint sets estimate %.3f", name, e)
		}
		if e := EstimateJaccard(h.Signature(a), h.Signature(slices.Clone(a))); e != 1 {
			t.Errorf("%s: equal sets estimate %.3f", name, e)
		}
		// The empty set.
		if e := h.Signature(nil); !slices.Equal(e, h.Signature([]uint64{})) {
			t.Errorf("%s: empty signatures differ", name)
		}
	}
	// Different seeds give different signatures.
	a := []uint64{1, 2, 3, 4, 5}
	if slices.Equal(NewFastHasher(32, 1).Signature(a), NewFastHasher(32, 2).Signature(a)) {
		t.Errorf("seed ignored")
	}
}

func TestFastHasherConcurrent(t *testing.T) {
	h := NewFastHasher(128, 9)
	r := rand.New(rand.NewPCG(1, 1))
	sets := make([][]uint64, 64)
	want := make([][]uint64, len(sets))
	for i := range sets {
		sets[i], _ = randomPair(r, 0, 1+r.IntN(400), 0)
		want[i] = h.Signature(sets[i])
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := range sets {
				if !slices.Equal(h.Signature(sets[i]), want[i]) {
					errs <- fmt.Sprintf("set %d differs under concurrency", i)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestExactJaccard(t *testing.T) {
	for _, tc := range []struct {
		a, b []uint64
		want float64
	}{
		{[]uint64{1, 2, 3}, []uint64{2, 3, 4}, 0.5},
		{[]uint64{1, 1, 2}, []uint64{2, 1}, 1},
		{[]uint64{1}, []uint64{2}, 0},
		{nil, nil, 1},
		{nil, []uint64{1}, 0},
	} {
		a := slices.Clone(tc.a)
		if got := ExactJaccard(tc.a, tc.b); got != tc.want {
			t.Errorf("ExactJaccard(%v, %v) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if !slices.Equal(a, tc.a) {
			t.Errorf("argument modified")
		}
	}
}

func TestCompactSet(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	for i := 0; i < 200; i++ {
		a, b := randomPair(r, r.IntN(300), r.IntN(300), r.IntN(300))
		a = append(a, a[:len(a)/3]...) // repetitions
		ca, cb := CompactSet(a), CompactSet(b)
		if !slices.IsSorted(ca) || len(slices.Compact(slices.Clone(ca))) != len(ca) {
			t.Fatalf("not a sorted set")
		}
		if got, want := CompactJaccard(ca, cb), ExactJaccard(a, b); got != want {
			t.Fatalf("CompactJaccard %v, ExactJaccard %v", got, want)
		}
	}
	if CompactJaccard(nil, nil) != 1 || CompactJaccard([]uint32{1}, nil) != 0 {
		t.Fatalf("empty sets")
	}
}

func TestEstimateJaccardPanicsOnLengths(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("no panic")
		}
	}()
	EstimateJaccard([]uint64{1}, []uint64{1, 2})
}

// TestNewHasher checks that the config picks the hasher and that text
// signatures of near-duplicates estimate their shingle Jaccard.
func TestNewHasher(t *testing.T) {
	c := DefaultTextConfig()
	if _, ok := c.NewHasher().(*FastHasher); !ok {
		t.Fatal("default hasher is not FastHasher")
	}
	c.Hasher = HasherEkzhu
	if _, ok := c.NewHasher().(*EkzhuHasher); !ok {
		t.Fatal("ekzhu hasher not selected")
	}
	c = DefaultTextConfig()
	c.NumPerm = 256
	words := strings.Fields(strings.Repeat("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon ", 3))
	for i := range words {
		words[i] = fmt.Sprintf("%s%c", words[i], 'a'+i/20) // no digits: they fold
	}
	a := strings.Join(words, " ")
	words[30] = "changed"
	b := strings.Join(words, " ")
	sa, sb := c.Shingles(a), c.Shingles(b)
	exact := ExactJaccard(sa, sb) // 5 of 56 shingles differ on each side
	est := EstimateJaccard(c.NewHasher().Signature(sa), c.NewHasher().Signature(sb))
	if math.Abs(est-exact) > 4*math.Sqrt(exact*(1-exact)/256) {
		t.Fatalf("estimate %.3f, exact %.3f", est, exact)
	}
}

// benchDocs returns n sets of 200 random shingle hashes.
func benchDocs(n int) [][]uint64 {
	r := rand.New(rand.NewPCG(1, 2))
	docs := make([][]uint64, n)
	for i := range docs {
		docs[i], _ = randomPair(r, 0, 200, 0)
	}
	return docs
}

// BenchmarkSignature signs 1,000 documents of 200 shingles per op with
// 128 permutations; the us/doc metric is the headline.
func BenchmarkSignature(b *testing.B) {
	docs := benchDocs(1000)
	for _, name := range []string{HasherEkzhu, HasherFast} {
		h := hashers(DefaultNumPerm, 1)[name]
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				for _, d := range docs {
					h.Signature(d)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(docs)), "us/doc")
		})
	}
}

// BenchmarkSignText measures the whole text path (normalise, shingle,
// sign, with a reused Signer) in MB/s of raw text.
func BenchmarkSignText(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	vocab := strings.Fields("the a of to and in is that for it with as was on be by this are or from at an not have which one can you all will use data model when your file time more code so if how what")
	texts := make([]string, 500)
	size := 0
	for i := range texts {
		var sb strings.Builder
		for w := 0; w < 150+r.IntN(150); w++ {
			if w > 0 {
				sb.WriteByte(' ')
			}
			sb.WriteString(vocab[r.IntN(len(vocab))])
			if r.IntN(12) == 0 {
				sb.WriteString(". The")
			}
		}
		texts[i] = sb.String()
		size += len(texts[i])
	}
	for _, name := range []string{HasherEkzhu, HasherFast} {
		c := DefaultTextConfig()
		c.Hasher = name
		sg := c.NewSigner()
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(size))
			for b.Loop() {
				for _, s := range texts {
					sg.Signature(s)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(texts)), "us/doc")
		})
	}
}

// TestASCIIWordShinglesFused: the one-pass word shingles of an ASCII text
// equal normalising first and shingling the result, for every
// combination of the normalisation switches, several n and seeds, on
// texts that stress the boundaries (white-space runs, punctuation, upper
// case, digits, control bytes, texts shorter than one n-gram).
func TestASCIIWordShinglesFused(t *testing.T) {
	pieces := []string{"the", "Quick", "BROWN", "fox", " ", "   ", "\t", "\n\n", "\r\n", "\v", "\f", ",", "!?", "e.g.", "don't",
		"4711", "x9", "\x00", "\x01", "\x7f", "_", "~", "(a)", "[b]", "--"}
	r := rand.New(rand.NewPCG(3, 4))
	texts := []string{"", " ", "word", "two words", " ?! ", "\x00"}
	texts = append(texts, randtext.Texts(r, pieces, 3000, 30)...)
	for flags := range 32 {
		c := DefaultTextConfig()
		c.Lowercase, c.FoldDigits, c.FoldPunct, c.CollapseWhitespace, c.NFKC = flags&1 != 0, flags&2 != 0, flags&4 != 0, flags&8 != 0, flags&16 != 0
		for _, n := range []int{1, 3, 5, 9} {
			c.N, c.Seed = n, uint64(flags*10+n)
			sg := c.NewSigner()
			for _, text := range texts {
				if !c.asciiWords(text) {
					t.Fatalf("%q does not take the fused path", text)
				}
				want := c.appendShingles(nil, c.appendNormalized(nil, text))
				if got := c.Shingles(text); !slices.Equal(got, want) {
					t.Fatalf("flags %05b n %d %q: fused %x, two passes %x", flags, n, text, got, want)
				}
				if got := sg.Shingles(text); !slices.Equal(got, want) {
					t.Fatalf("flags %05b n %d %q: Signer %x, two passes %x", flags, n, text, got, want)
				}
			}
		}
	}
	// A non-ASCII text and character shingles keep the two-pass path.
	c := DefaultTextConfig()
	if c.asciiWords("café") {
		t.Fatal("a non-ASCII text takes the fused path")
	}
	c.Shingle = ShingleChar
	if c.asciiWords("cafe") {
		t.Fatal("character shingles take the fused path")
	}
}
