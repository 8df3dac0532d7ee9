// Package chatgen generates synthetic chat datasets for sieve's
// benchmarks: JSONL records in the OpenAI "messages" format (an optional
// system prompt, then user and assistant turns, sometimes several), built
// by composing a built-in vocabulary of topic questions, answer sentences
// and code snippets, about 1.5 KB a record on average.
//
// Output is a pure function of the Config: record i is generated from its
// own random stream (seeded by Seed and i), so generation needs no memory
// of earlier records. Every original record carries a reference number
// unique to it (a bijection of its index), so originals never collide
// under sieve's exact-dedup key. A fraction Dup of the records are planted
// duplicates of earlier originals: half verbatim copies, half variants
// that differ only in letter case or whitespace, which sieve's key
// (lowercased content, whitespace runs collapsed, trimmed, joined with
// the roles) folds onto the original. Exact dedup of n records therefore
// always keeps n − Stats.PlantedDups of them.
package chatgen

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Config says what to generate.
type Config struct {
	// N is the number of records.
	N int
	// Dup is the fraction of records, in [0, 0.9], that are duplicates of
	// earlier records; exactly floor(N*Dup) are planted, spread evenly.
	Dup float64
	// Seed selects the dataset; the same Config always gives the same
	// bytes.
	Seed uint64
}

// Stats describes what Generate wrote.
type Stats struct {
	Records      int64 `json:"records"`
	Bytes        int64 `json:"bytes"`
	PlantedDups  int64 `json:"planted_dups"`
	VerbatimDups int64 `json:"verbatim_dups"`
	CaseDups     int64 `json:"case_dups"`
	SpaceDups    int64 `json:"whitespace_dups"`
	Messages     int64 `json:"messages"`
}

// Message is one turn, as Record returns it.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Generate writes cfg.N JSONL records to w.
func Generate(w io.Writer, cfg Config) (Stats, error) {
	if cfg.N < 0 {
		return Stats{}, fmt.Errorf("chatgen: negative N")
	}
	if cfg.Dup < 0 || cfg.Dup > 0.9 {
		return Stats{}, fmt.Errorf("chatgen: Dup %v out of [0, 0.9]", cfg.Dup)
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	g := newGen(cfg)
	var st Stats
	line := make([]byte, 0, 1<<14)
	for i := 0; i < cfg.N; i++ {
		msgs, kind := g.record(i)
		switch kind {
		case kindVerbatim:
			st.PlantedDups++
			st.VerbatimDups++
		case kindCase:
			st.PlantedDups++
			st.CaseDups++
		case kindSpace:
			st.PlantedDups++
			st.SpaceDups++
		}
		line = appendRecord(line[:0], msgs)
		st.Messages += int64(len(msgs))
		n, err := bw.Write(line)
		st.Bytes += int64(n)
		if err != nil {
			return st, err
		}
		st.Records++
	}
	return st, bw.Flush()
}

// Record returns record i of the dataset cfg describes, without
// generating the others, and whether it is a planted duplicate.
func Record(cfg Config, i int) ([]Message, bool) {
	g := newGen(cfg)
	msgs, kind := g.record(i)
	out := make([]Message, len(msgs))
	for k, m := range msgs {
		out[k] = Message{m.role, string(m.content)}
	}
	return out, kind != kindOriginal
}

const (
	kindOriginal = iota
	kindVerbatim
	kindCase
	kindSpace
)

type msg struct {
	role    string
	content []byte
}

type gen struct {
	cfg  Config
	rng  *rand.Rand
	pcg  *rand.PCG
	msgs []msg
	bufs [][]byte
}

func newGen(cfg Config) *gen {
	pcg := rand.NewPCG(0, 0)
	return &gen{cfg: cfg, pcg: pcg, rng: rand.New(pcg)}
}

// isDup reports whether record i is a planted duplicate: floor(N*Dup)
// of them, evenly spread, never record 0.
func (g *gen) isDup(i int) bool {
	if g.cfg.Dup == 0 || i == 0 {
		return false
	}
	d := g.cfg.Dup
	return int64(float64(i+1)*d) > int64(float64(i)*d)
}

// record builds record i into g.msgs (valid until the next call).
func (g *gen) record(i int) ([]msg, int) {
	if !g.isDup(i) {
		g.original(i)
		return g.msgs, kindOriginal
	}
	// Pick the source and the variant from i's own stream.
	g.pcg.Seed(g.cfg.Seed^0xd1b54a32d192ed03, uint64(i))
	var j int
	if g.rng.IntN(2) == 0 {
		j = i - 1 - g.rng.IntN(min(i, 2000)) // recent
	} else {
		j = g.rng.IntN(i) // anywhere before
	}
	for j > 0 && g.isDup(j) {
		j--
	}
	v := g.rng.IntN(4)
	vr := rand.New(rand.NewPCG(g.rng.Uint64(), uint64(i)))
	g.original(j)
	switch {
	case v < 2:
		return g.msgs, kindVerbatim
	case v == 2:
		g.caseVariant(vr)
		return g.msgs, kindCase
	default:
		g.spaceVariant(vr)
		return g.msgs, kindSpace
	}
}

// caseVariant changes letter case in one or more messages: the whole user
// turn in lower case (people who don't use the shift key), or the first
// letter of every sentence of the assistant turn switched.
func (g *gen) caseVariant(r *rand.Rand) {
	changed := false
	last := -1
	for k := range g.msgs {
		m := &g.msgs[k]
		if m.role != "user" {
			continue
		}
		last = k
		if r.IntN(2) == 0 {
			lower := asciiLower(m.content)
			changed = changed || string(lower) != string(m.content)
			m.content = lower
		}
	}
	if !changed && last >= 0 {
		m := &g.msgs[last]
		lower := asciiLower(m.content)
		changed = string(lower) != string(m.content)
		m.content = lower
	}
	if !changed {
		m := &g.msgs[len(g.msgs)-1]
		m.content = asciiUpper(m.content)
	}
}

// spaceVariant changes whitespace only: doubled spaces after full stops,
// an extra blank line, a trailing newline, a tab instead of a space.
func (g *gen) spaceVariant(r *rand.Rand) {
	for k := range g.msgs {
		if k > 0 && r.IntN(2) == 0 {
			continue
		}
		m := &g.msgs[k]
		var out []byte
		switch r.IntN(4) {
		case 0:
			out = []byte(strings.ReplaceAll(string(m.content), ". ", ".  "))
		case 1:
			out = []byte(strings.Replace(string(m.content), " ", "\t", 3))
		case 2:
			out = append([]byte(string(m.content)), " \n"...)
		default:
			out = []byte(strings.Replace(string(m.content), " ", "  ", 1))
		}
		if string(out) == string(m.content) {
			out = append(out, '\n')
		}
		m.content = out
	}
}

func asciiLower(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

func asciiUpper(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// uniq maps a record index to a distinct 32-bit reference number (a
// bijection on uint32 keyed by the seed).
func uniq(seed uint64, i int) uint32 {
	x := uint32(i)
	x ^= uint32(seed) ^ uint32(seed>>32)
	x *= 0x9e3779b1
	x ^= x >> 15
	x *= 0x85ebca77
	x ^= x >> 13
	return x
}

// original builds original record i.
func (g *gen) original(i int) {
	g.pcg.Seed(g.cfg.Seed, uint64(i))
	r := g.rng
	for len(g.bufs) < 8 {
		g.bufs = append(g.bufs, make([]byte, 0, 4096))
	}
	g.msgs = g.msgs[:0]
	nb := 0
	next := func() []byte {
		b := g.bufs[nb][:0]
		nb++
		return b
	}
	t := &topics[r.IntN(len(topics))]
	if r.IntN(100) < 35 {
		b := next()
		b = append(b, systems[r.IntN(len(systems))]...)
		if t.system != "" && r.IntN(2) == 0 {
			b = append(b, ' ')
			b = append(b, t.system...)
		}
		g.msgs = append(g.msgs, msg{"system", b})
	}
	turns := 1
	switch p := r.IntN(100); {
	case p < 18:
		turns = 2
	case p < 25:
		turns = 3
	}
	for k := 0; k < turns; k++ {
		u := next()
		if k == 0 {
			if r.IntN(3) == 0 {
				u = append(u, greetings[r.IntN(len(greetings))]...)
				u = append(u, ' ')
			}
			u = append(u, pick(r, t.questions)...)
			u = append(u, ' ')
			u = appendRef(u, r, uniq(g.cfg.Seed, i))
			if r.IntN(2) == 0 {
				u = append(u, ' ')
				u = append(u, pick(r, t.details)...)
			}
		} else {
			u = append(u, pick(r, followUps)...)
			if r.IntN(2) == 0 {
				u = append(u, ' ')
				u = append(u, pick(r, t.followUps)...)
			}
		}
		g.msgs = append(g.msgs, msg{"user", u})
		a := next()
		paras := 1 + r.IntN(3)
		if k > 0 {
			paras = 1 + r.IntN(2)
		}
		if k == 0 && r.IntN(4) == 0 {
			a = append(a, pick(r, openers)...)
			a = append(a, ' ')
		}
		var used uint64 // sentences already in this answer
		codeAt := -1
		if len(t.code) > 0 && r.IntN(100) < 65 {
			codeAt = r.IntN(paras)
		}
		listAt := -1
		if codeAt < 0 && r.IntN(3) == 0 {
			listAt = r.IntN(paras)
		}
		for p := 0; p < paras; p++ {
			if p > 0 {
				a = append(a, "\n\n"...)
			}
			n := 2 + r.IntN(4)
			for s := 0; s < n; s++ {
				if s > 0 {
					a = append(a, ' ')
				}
				a = append(a, t.sentences[pickUnused(r, len(t.sentences), &used)]...)
			}
			if p == codeAt {
				a = append(a, "\n\n```"...)
				a = append(a, t.lang...)
				a = append(a, '\n')
				a = append(a, pick(r, t.code)...)
				a = append(a, "\n```"...)
			}
			if p == listAt {
				a = append(a, "\n\n"...)
				items := 3 + r.IntN(3)
				for li := 0; li < items; li++ {
					if li > 0 {
						a = append(a, '\n')
					}
					a = append(a, "- "...)
					a = append(a, t.sentences[pickUnused(r, len(t.sentences), &used)]...)
				}
			}
		}
		if r.IntN(5) == 0 {
			a = append(a, "\n\n"...)
			a = append(a, pick(r, closers)...)
		}
		g.msgs = append(g.msgs, msg{"assistant", a})
	}
	for k, m := range g.msgs {
		g.bufs[k] = m.content[:0] // keep grown buffers
	}
}

func pick(r *rand.Rand, s []string) string { return s[r.IntN(len(s))] }

// pickUnused picks an index in [0, n) not yet set in *used (n <= 64),
// probing forward from a random start; once all are used it starts over.
func pickUnused(r *rand.Rand, n int, used *uint64) int {
	if *used == 1<<n-1 {
		*used = 0
	}
	k := r.IntN(n)
	for *used&(1<<k) != 0 {
		k = (k + 1) % n
	}
	*used |= 1 << k
	return k
}

// appendRef appends a sentence carrying the record's reference number.
func appendRef(b []byte, r *rand.Rand, n uint32) []byte {
	tpl := refs[r.IntN(len(refs))]
	pre, post, _ := strings.Cut(tpl, "%")
	b = append(b, pre...)
	if strings.HasPrefix(post, "x") {
		b = strconv.AppendUint(b, uint64(n), 16)
		post = post[1:]
	} else {
		b = strconv.AppendUint(b, uint64(n), 10)
	}
	return append(b, post...)
}

// appendRecord appends {"messages":[...]}\n.
func appendRecord(b []byte, msgs []msg) []byte {
	b = append(b, `{"messages":[`...)
	for k, m := range msgs {
		if k > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"role":"`...)
		b = append(b, m.role...)
		b = append(b, `","content":`...)
		b = appendJSONString(b, m.content)
		b = append(b, '}')
	}
	return append(b, "]}\n"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal. s is valid UTF-8
// (all vocabulary is), so only quotes, backslashes and control
// characters need escaping.
func appendJSONString(b, s []byte) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\t':
			b = append(b, '\\', 't')
		case '\r':
			b = append(b, '\\', 'r')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func init() {
	// The vocabulary must be valid UTF-8 for appendJSONString.
	check := func(ss []string) {
		for _, s := range ss {
			if !utf8.ValidString(s) {
				panic("chatgen: invalid UTF-8 in vocabulary: " + s)
			}
		}
	}
	for _, t := range topics {
		check(t.questions)
		check(t.details)
		check(t.sentences)
		check(t.code)
		check(t.followUps)
	}
	check(systems)
	check(greetings)
	check(openers)
	check(closers)
	check(followUps)
	check(refs)
}
