// Package degen makes the broken answers that language models really
// produce, for measuring how well sieve's filters catch them: random-token
// junk, repetition loops, answers cut at a token limit, empty answers,
// answers in the wrong language, bare refusals, prompt echoes, leftover
// chat-template tokens and mojibake.
//
// Every output is made by a script from a seeded random generator and,
// where a kind needs raw material (loops, cuts, template leftovers,
// mojibake), from real prompt/answer pairs passed in at run time. Nothing
// here is written to match a detector: the generators imitate the failure
// (a sampler stuck in a loop, a max_tokens cut, a missing stop token, a
// wrong decoder), not the rule that is meant to catch it.
package degen

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Kind names one way an answer goes wrong.
type Kind string

// The kinds Generate makes, in order.
const (
	Junk      Kind = "junk"      // random tokens, subword pieces, braces, code symbols, prompt-injection text
	Loop      Kind = "loop"      // a real answer that starts fine, then loops a sentence, phrase or token
	Truncated Kind = "truncated" // a real answer cut at a random token mid-sentence
	Empty     Kind = "empty"     // empty or white space only
	WrongLang Kind = "wrong_language"
	Refusal   Kind = "refusal"  // a bare refusal that gives no help
	Echo      Kind = "echo"     // the prompt repeated, possibly restated
	Template  Kind = "template" // leftover chat-template tokens, runaway "### Human:" turns
	Mojibake  Kind = "mojibake" // UTF-8 decoded as CP1252 or Latin-1
)

// Kinds lists every kind in the order Generate makes them.
func Kinds() []Kind {
	return []Kind{Junk, Loop, Truncated, Empty, WrongLang, Refusal, Echo, Template, Mojibake}
}

// Pair is one real prompt and answer, the raw material of the generators.
type Pair struct {
	Prompt, Answer string
}

// Output is one generated broken answer with the prompt it answers.
type Output struct {
	Kind    Kind
	ID      string // kind/number, stable for a seed
	Variant string // how it was made, e.g. "loop/sentence"
	Prompt  string
	Answer  string
	Source  int // index into the pool of the pair used, -1 if none
}

// Generate makes perKind outputs of every kind from seed and pool. The
// pool must not be empty.
func Generate(seed uint64, perKind int, pool []Pair) []Output {
	g := newGen(seed, pool)
	var out []Output
	for _, k := range Kinds() {
		for i := 0; i < perKind; i++ {
			o := g.one(k)
			o.Kind = k
			o.ID = fmt.Sprintf("%s/%d", k, i)
			out = append(out, o)
		}
	}
	return out
}

type gen struct {
	r     *rand.Rand
	pool  []Pair
	vocab []string // words of the pool's answers, with repeats (frequency-weighted)
}

func newGen(seed uint64, pool []Pair) *gen {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6465_6765_6e)), pool: pool}
	for i, p := range pool {
		if i%4 != 0 {
			continue // a quarter of the pool is plenty of vocabulary
		}
		for _, w := range strings.Fields(p.Answer) {
			w = strings.TrimFunc(w, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
			if w != "" && len(w) < 20 {
				g.vocab = append(g.vocab, w)
			}
		}
	}
	if len(g.vocab) == 0 {
		g.vocab = []string{"the", "model", "answer"}
	}
	return g
}

func (g *gen) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

// pair returns a random pool pair whose answer satisfies ok, trying a
// while before settling for any.
func (g *gen) pair(ok func(Pair) bool) (int, Pair) {
	for try := 0; try < 200; try++ {
		i := g.r.IntN(len(g.pool))
		if ok == nil || ok(g.pool[i]) {
			return i, g.pool[i]
		}
	}
	i := g.r.IntN(len(g.pool))
	return i, g.pool[i]
}

func (g *gen) one(k Kind) Output {
	switch k {
	case Junk:
		return g.junk()
	case Loop:
		return g.loop()
	case Truncated:
		return g.truncated()
	case Empty:
		i, p := g.pair(nil)
		return Output{Variant: "empty", Prompt: p.Prompt, Answer: g.pick([]string{"", " ", "\n", "\n\n", "  \n\t", "\t", " \n \n "}), Source: i}
	case WrongLang:
		return g.wrongLang()
	case Refusal:
		return g.refusal()
	case Echo:
		return g.echo()
	case Template:
		return g.template()
	case Mojibake:
		return g.mojibake()
	}
	panic("degen: unknown kind " + string(k))
}

// junk imitates a broken sampler or a corrupted checkpoint: a stream of
// tokens drawn from a mix of sources, in proportions chosen per output.
func (g *gen) junk() Output {
	i, p := g.pair(nil)
	n := 15 + g.r.IntN(300)
	// Weights of the token sources: words, subword pieces, symbols,
	// identifiers, numbers.
	w := [5]float64{}
	for k := range w {
		w[k] = g.r.Float64()
	}
	w[0] += 0.3 * g.r.Float64()
	var b strings.Builder
	injected := g.r.IntN(3) == 0
	injectAt := g.r.IntN(n)
	for t := 0; t < n; t++ {
		if injected && t == injectAt {
			b.WriteString(g.injection())
			b.WriteByte(' ')
		}
		var tok string
		switch weighted(g.r, w[:]) {
		case 0:
			tok = g.pick(g.vocab)
			if g.r.IntN(6) == 0 {
				tok = strings.ToUpper(tok[:1]) + tok[1:]
			}
		case 1:
			tok = g.subword()
		case 2:
			tok = g.pick(junkSymbols)
		case 3:
			tok = g.identifier()
		case 4:
			tok = fmt.Sprint(g.r.IntN(1 << uint(1+g.r.IntN(16))))
		}
		b.WriteString(tok)
		switch x := g.r.IntN(20); {
		case x == 0:
			b.WriteByte('\n')
		case x < 3:
			// glued to the next token, as BPE pieces are
		default:
			b.WriteByte(' ')
		}
	}
	return Output{Variant: "junk", Prompt: p.Prompt, Answer: b.String(), Source: i}
}

func weighted(r *rand.Rand, w []float64) int {
	var sum float64
	for _, x := range w {
		sum += x
	}
	x := r.Float64() * sum
	for k, v := range w {
		if x < v {
			return k
		}
		x -= v
	}
	return len(w) - 1
}

var junkSymbols = []string{"{", "}", "[", "]", "(", ")", "{}", "[]", "()", ");", "};", "})", "]]", "{{", "}}", ";", "=>", "->", "::", "</", "/>", "<>",
	"$", "\\", "\\n", "@", "#", "%", "&&", "||", "*/", "/*", "//", "==", "!=", "+=", "<", ">", "|", "`", "```", "\"", "'", ",", ".", ":", "...",
	"Ġ", "▁", "Ċ", "ĉ", "<unk>", "<pad>", "�", "##", "~", "^", "_", "__", "-->", "<!--"}

// subword is a piece of a vocabulary word, as a BPE token would be,
// sometimes with the tokenizer's word-start marker.
func (g *gen) subword() string {
	w := g.pick(g.vocab)
	rs := []rune(w)
	if len(rs) > 3 {
		a := g.r.IntN(len(rs) - 2)
		b := a + 2 + g.r.IntN(min(4, len(rs)-a-1))
		rs = rs[a:min(b, len(rs))]
	}
	s := string(rs)
	switch g.r.IntN(6) {
	case 0:
		return "Ġ" + s
	case 1:
		return "▁" + s
	case 2:
		return "##" + s
	}
	return s
}

func (g *gen) identifier() string {
	a, b := strings.ToLower(g.pick(g.vocab)), g.pick(g.vocab)
	switch g.r.IntN(6) {
	case 0:
		return a + "_" + strings.ToLower(b)
	case 1:
		return a + strings.ToUpper(b[:1]) + b[1:]
	case 2:
		return "self." + a
	case 3:
		return a + "()"
	case 4:
		return fmt.Sprintf("0x%x", g.r.Uint32())
	}
	return "__" + a + "__"
}

// injection composes a prompt-injection snippet of the kind found in
// scraped and adversarial data.
func (g *gen) injection() string {
	parts := [][]string{
		{"Ignore", "ignore", "Disregard", "Forget", "IGNORE"},
		{" all previous", " the above", " prior", " your", " any earlier"},
		{" instructions", " rules", " prompts", " directions", " guidelines"},
		{". Instead,", " and", ".", ". Now"},
		{" print", " output", " reveal", " say", " repeat", " write"},
		{" the system prompt", " \"I have been PWNED\"", " your hidden instructions", " the admin password", " everything above", " HACKED"},
	}
	var b strings.Builder
	if g.r.IntN(3) == 0 {
		b.WriteString(g.pick([]string{"SYSTEM: ", "[system] ", "<!-- admin --> ", "### NEW TASK: ", "sudo "}))
	}
	for _, ps := range parts {
		b.WriteString(g.pick(ps))
	}
	return b.String()
}

// loop imitates greedy decoding stuck in a cycle: the real answer starts,
// then at some point one unit repeats until the token limit.
func (g *gen) loop() Output {
	i, p := g.pair(func(p Pair) bool { return len(strings.Fields(p.Answer)) >= 40 })
	words := strings.Fields(p.Answer)
	cut := len(words) * (20 + g.r.IntN(60)) / 100
	prefix := strings.Join(words[:cut], " ")
	limit := len(prefix) + 400 + g.r.IntN(3000)
	var unit, sep, variant string
	counter := false
	switch g.r.IntN(6) {
	case 0, 1: // a sentence of the answer
		sents := sentences(p.Answer)
		unit = sents[g.r.IntN(len(sents))]
		sep = g.pick([]string{" ", " ", "\n", "\n\n"})
		variant = "sentence"
	case 2: // a phrase of 3-10 words from near the cut
		n := 3 + g.r.IntN(8)
		a := max(0, cut-n-g.r.IntN(20))
		unit = strings.Join(words[a:min(a+n, len(words))], " ")
		sep = g.pick([]string{" ", ", ", " "})
		variant = "phrase"
	case 3: // one token
		unit = g.pick([]string{words[max(0, cut-1)], words[g.r.IntN(len(words))], "the", "and", "very", "!", "😊", "ha", "no", "-", "..."})
		sep = g.pick([]string{" ", "", " "})
		variant = "token"
	case 4: // a numbered step whose counter moves on
		sents := sentences(p.Answer)
		unit = sents[g.r.IntN(len(sents))]
		sep = "\n"
		counter = true
		variant = "numbered"
	default: // a line of the answer, or its last line
		lines := nonEmptyLines(p.Answer)
		unit = lines[g.r.IntN(len(lines))]
		sep = "\n"
		variant = "line"
	}
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteString(g.pick([]string{" ", "\n", "\n\n"}))
	for k := 1; b.Len() < limit; k++ {
		if counter {
			fmt.Fprintf(&b, "%d. ", k)
		}
		b.WriteString(unit)
		b.WriteString(sep)
	}
	ans := b.String()
	ans = cutRunes(ans, limit)
	return Output{Variant: "loop/" + variant, Prompt: p.Prompt, Answer: ans, Source: i}
}

func cutRunes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// sentences splits s roughly into sentences (at ". ", "! ", "? " and line
// breaks), never returning an empty list.
func sentences(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		end := -1
		if (c == '.' || c == '!' || c == '?') && (i+1 == len(s) || s[i+1] == ' ' || s[i+1] == '\n') {
			end = i + 1
		} else if c == '\n' {
			end = i
		}
		if end >= 0 {
			if t := strings.TrimSpace(s[start:end]); len(strings.Fields(t)) >= 3 {
				out = append(out, t)
			}
			start = i + 1
		}
	}
	if t := strings.TrimSpace(s[start:]); len(strings.Fields(t)) >= 3 {
		out = append(out, t)
	}
	if len(out) == 0 {
		out = []string{strings.TrimSpace(s)}
	}
	return out
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	if len(out) == 0 {
		out = []string{s}
	}
	return out
}

// truncated imitates a max_tokens cut: the answer stops at a random token
// boundary (a word end, or inside a word where BPE splits it) between a
// fifth of the way and near its end, not at a sentence end.
func (g *gen) truncated() Output {
	i, p := g.pair(func(p Pair) bool { return len(strings.Fields(p.Answer)) >= 30 })
	a := strings.TrimRightFunc(p.Answer, unicode.IsSpace)
	for try := 0; try < 50; try++ {
		pos := len(a) * (20 + g.r.IntN(76)) / 100
		for pos < len(a) && !utf8.RuneStart(a[pos]) {
			pos++
		}
		// Move to a token boundary: the end of the word at pos, or a
		// piece of it (2+ letters in) a third of the time.
		inWord := g.r.IntN(3) == 0
		j := pos
		for j < len(a) && a[j] != ' ' && a[j] != '\n' {
			j++
		}
		if inWord {
			k := pos
			for k > 0 && a[k-1] != ' ' && a[k-1] != '\n' {
				k--
			}
			if j-k >= 5 {
				j = k + 2 + g.r.IntN(j-k-3)
				for j < len(a) && !utf8.RuneStart(a[j]) {
					j++
				}
			}
		}
		cutText := strings.TrimRightFunc(a[:j], unicode.IsSpace)
		if j >= len(a) || cutText == "" {
			continue
		}
		last, _ := utf8.DecodeLastRuneInString(cutText)
		if strings.ContainsRune(".!?。", last) {
			continue // a sentence end: not mid-sentence
		}
		return Output{Variant: map[bool]string{true: "truncated/in_word", false: "truncated/word"}[inWord], Prompt: p.Prompt, Answer: cutText, Source: i}
	}
	words := strings.Fields(a)
	return Output{Variant: "truncated/word", Prompt: p.Prompt, Answer: strings.Join(words[:len(words)/2], " "), Source: i}
}

// wrongLang answers an English prompt in another language: a few
// sentences from the phrase bank of one language, in random order, as
// prose or as a list.
func (g *gen) wrongLang() Output {
	i, p := g.pair(nil)
	langs := make([]string, 0, len(phraseBank))
	for l := range phraseBank {
		langs = append(langs, l)
	}
	sortStrings(langs)
	lang := g.pick(langs)
	bank := phraseBank[lang]
	n := 2 + g.r.IntN(6)
	perm := g.r.Perm(len(bank))
	var b strings.Builder
	list := g.r.IntN(3) == 0
	for k := 0; k < n && k < len(perm); k++ {
		s := bank[perm[k]]
		switch {
		case list && k > 0:
			fmt.Fprintf(&b, "\n%d. %s", k, s)
		case k > 0:
			b.WriteByte(' ')
			b.WriteString(s)
		default:
			b.WriteString(s)
		}
	}
	return Output{Variant: "wrong_language/" + lang, Prompt: p.Prompt, Answer: b.String(), Source: i}
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// refusal composes a refusal that gives no help: an apology or not, the
// refusal, maybe a reason, maybe an offer to help with something else.
func (g *gen) refusal() Output {
	i, p := g.pair(nil)
	open := g.pick([]string{"I'm sorry, but ", "I apologize, but ", "Sorry, ", "Unfortunately, ", "I'm afraid ", "", "I’m sorry, but ", "Apologies, but "})
	core := g.pick([]string{
		"I can't help with that.", "I cannot assist with this request.", "I am not able to provide that information.",
		"I won't be able to do that.", "I can't comply with this request.", "that's not something I can help with.",
		"I cannot fulfill this request.", "I'm unable to help with that request.", "I can't provide an answer to this.",
		"I am unable to complete this task.", "I cannot do what you're asking.", "I'm not able to help with this one.",
	})
	if open == "" {
		core = strings.ToUpper(core[:1]) + core[1:]
	}
	var b strings.Builder
	b.WriteString(open + core)
	if g.r.IntN(2) == 0 {
		b.WriteString(" " + g.pick([]string{
			"It goes against my guidelines.", "This request could be used to cause harm.",
			"As an AI language model, I don't have access to that kind of information.",
			"I don't have enough information to answer accurately.", "It would not be appropriate for me to do so.",
			"I don't have access to real-time data.", "Providing this could violate someone's privacy.",
		}))
	}
	if g.r.IntN(2) == 0 {
		b.WriteString(" " + g.pick([]string{
			"Is there anything else I can help you with?", "Let me know if you have another question.",
			"Feel free to ask me something else.", "I'd be happy to help with a different request.",
			"Please let me know if there's something else you need.",
		}))
	}
	return Output{Variant: "refusal", Prompt: p.Prompt, Answer: b.String(), Source: i}
}

// echo imitates a model that repeats its input instead of answering.
func (g *gen) echo() Output {
	i, p := g.pair(func(p Pair) bool { return len(strings.Fields(p.Prompt)) >= 6 })
	q := strings.TrimSpace(p.Prompt)
	var a, v string
	switch g.r.IntN(5) {
	case 0:
		a, v = q, "exact"
	case 1:
		a, v = g.pick([]string{"Sure! ", "Question: ", "Instruction: ", "Q: ", "User: ", "Input: "})+q, "prefixed"
	case 2:
		a, v = q+g.pick([]string{"\n\nAnswer:", "\n\nResponse:", "\n", " ", "\n\nOutput:"}), "suffixed"
	case 3:
		a, v = q+"\n\n"+q, "twice"
	default:
		a, v = g.restate(q), "restated"
	}
	return Output{Variant: "echo/" + v, Prompt: p.Prompt, Answer: a, Source: i}
}

// restate turns the prompt into "You asked …"/"The task is to …" form,
// with the first letter lower-cased, as a model that paraphrases the
// request and stops.
func (g *gen) restate(q string) string {
	r, n := utf8.DecodeRuneInString(q)
	low := string(unicode.ToLower(r)) + q[n:]
	return g.pick([]string{"You asked: ", "The task is to ", "You want me to ", "So the question is: ", "Restating the request: "}) + low
}

// template imitates a missing stop token or a wrong chat template: role
// markers and special tokens left in the answer, or a runaway next turn.
func (g *gen) template() Output {
	i, p := g.pair(nil)
	_, other := g.pair(nil)
	a := strings.TrimRightFunc(p.Answer, unicode.IsSpace)
	nextQ := strings.TrimSpace(other.Prompt)
	nextA := firstWords(other.Answer, 10+g.r.IntN(60))
	var out, v string
	switch g.r.IntN(8) {
	case 0:
		out, v = a+"<|im_end|>\n<|im_start|>user\n"+nextQ+"<|im_end|>\n<|im_start|>assistant\n"+nextA, "chatml_runaway"
	case 1:
		out, v = a+g.pick([]string{"</s>", " </s>", "<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<end_of_turn>", "<eos>"}), "stop_token"
	case 2:
		out, v = a+"</s><s>[INST] "+nextQ+" [/INST] "+nextA, "llama2_runaway"
	case 3:
		out, v = a+"\n\n### Human: "+nextQ+"\n\n### Assistant: "+nextA, "human_runaway"
	case 4:
		out, v = g.pick([]string{"<|assistant|>\n", "<|im_start|>assistant\n", "<start_of_turn>model\n", "[/INST] ", "<|start_header_id|>assistant<|end_header_id|>\n\n", "### Response:\n"})+a, "role_prefix"
	case 5:
		out, v = a+"\n<|user|>\n"+nextQ+"\n<|assistant|>\n"+nextA, "zephyr_runaway"
	case 6:
		out, v = a+"\n\n### Instruction:\n"+nextQ+"\n\n### Response:\n"+nextA, "alpaca_runaway"
	default:
		out, v = a+"<end_of_turn>\n<start_of_turn>user\n"+nextQ+"<end_of_turn>\n<start_of_turn>model\n"+nextA, "gemma_runaway"
	}
	return Output{Variant: "template/" + v, Prompt: p.Prompt, Answer: out, Source: i}
}

func firstWords(s string, n int) string {
	w := strings.Fields(s)
	return strings.Join(w[:min(n, len(w))], " ")
}

// mojibake encodes a real answer as UTF-8 and decodes the bytes as
// Windows-1252 (or Latin-1), as a misconfigured reader does. An answer
// with no non-ASCII character first gets the typographic punctuation an
// editor or a model would have written (’ “ ” —), since pure ASCII
// survives the round trip unchanged.
func (g *gen) mojibake() Output {
	i, p := g.pair(func(p Pair) bool { return nonASCII(p.Answer) >= 3 })
	a := p.Answer
	v := "cp1252"
	if nonASCII(a) < 3 {
		a = typographic(a)
		v = "cp1252_typographic"
	}
	latin1 := g.r.IntN(4) == 0
	if latin1 {
		v = strings.Replace(v, "cp1252", "latin1", 1)
	}
	var b strings.Builder
	for k := 0; k < len(a); k++ {
		c := a[k]
		if c < 0x80 {
			b.WriteByte(c)
			continue
		}
		if !latin1 && c >= 0x80 && c < 0xa0 {
			if r := cp1252[c-0x80]; r != 0 {
				b.WriteRune(r)
				continue
			}
		}
		b.WriteRune(rune(c))
	}
	return Output{Variant: "mojibake/" + v, Prompt: p.Prompt, Answer: b.String(), Source: i}
}

func nonASCII(s string) int {
	n := 0
	for _, r := range s {
		if r >= 0x80 {
			n++
		}
	}
	return n
}

// typographic replaces ASCII apostrophes and quotes with curly ones and
// " - " with an em dash.
func typographic(s string) string {
	var b strings.Builder
	open := true
	for k := 0; k < len(s); k++ {
		switch c := s[k]; c {
		case '\'':
			b.WriteString("’")
		case '"':
			if open {
				b.WriteString("“")
			} else {
				b.WriteString("”")
			}
			open = !open
		case '-':
			if k > 0 && k+1 < len(s) && s[k-1] == ' ' && s[k+1] == ' ' {
				b.WriteString("—")
			} else {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// cp1252 maps bytes 0x80–0x9f to their Windows-1252 characters (0: none).
var cp1252 = [32]rune{
	'€', 0, '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', 0, 'Ž', 0,
	0, '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', 0, 'ž', 'Ÿ',
}
