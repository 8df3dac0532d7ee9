package filters

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/sieve-data/sieve/datasets"
)

// conv builds a sample from role, content pairs.
func conv(pairs ...string) *datasets.Sample {
	s := &datasets.Sample{}
	for i := 0; i+1 < len(pairs); i += 2 {
		s.Messages = append(s.Messages, datasets.Message{Role: pairs[i], Content: pairs[i+1]})
	}
	s.ID = datasets.ContentID(s.Messages)
	return s
}

// qa is a one-turn conversation.
func qa(q, a string) *datasets.Sample { return conv("user", q, "assistant", a) }

// only returns a Config whose Skip leaves just the given rules on (Gopher
// rules are turned on with gopher.enabled).
func only(cfg Config, rules ...string) Config {
	for _, r := range rules {
		if strings.HasPrefix(r, "gopher.") {
			cfg.Gopher.Enabled = true
		}
	}
	for _, f := range filterRules {
		for _, r := range f.rules {
			if !slices.Contains(rules, r) {
				cfg.Skip = append(cfg.Skip, r)
			}
		}
	}
	return cfg
}

// uniqueWords returns n distinct lower-case words of 5 letters.
func uniqueWords(n int) []string {
	out := make([]string, n)
	for i := range out {
		b := []byte("wa")
		x := i
		for k := 0; k < 3; k++ {
			b = append(b, byte('a'+x%26))
			x /= 26
		}
		out[i] = string(b)
	}
	return out
}

func words(n int) string { return strings.Join(uniqueWords(n), " ") }

func rep(w string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = w
	}
	return out
}

type ruleCase struct {
	name     string
	cfg      Config
	sample   *datasets.Sample
	wantKeep bool
	wantRule string // for drops
}

func runCases(t *testing.T, cases []ruleCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs, err := New(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			v, keep := CheckAll(fs, tc.sample)
			if keep != tc.wantKeep || v.Keep != tc.wantKeep {
				t.Fatalf("keep = %v, want %v (verdict %+v)", keep, tc.wantKeep, v)
			}
			if !keep && v.Rule != tc.wantRule {
				t.Fatalf("rule = %q, want %q (verdict %+v)", v.Rule, tc.wantRule, v)
			}
			if !keep && v.Reason == "" {
				t.Fatalf("drop without a reason: %+v", v)
			}
		})
	}
}

func TestTurnOrder(t *testing.T) {
	c := only(Config{}, Rules()[1:6]...)
	runCases(t, []ruleCase{
		{"system user assistant", c, conv("system", "Be brief.", "user", "Hi", "assistant", "Hello."), true, ""},
		{"two exchanges", c, conv("user", "Hi", "assistant", "Hello.", "user", "More?", "assistant", "Sure."), true, ""},
		{"assistant first", c, conv("assistant", "Hello.", "user", "Hi", "assistant", "Yes."), false, "turn_order.first_not_user"},
		{"system after user", c, conv("user", "Hi", "system", "Be brief.", "assistant", "Hello."), false, "turn_order.system_not_first"},
		{"two user turns", c, conv("user", "Hi", "user", "Hello?", "assistant", "Hello."), false, "turn_order.consecutive_user"},
		{"two assistant turns", c, conv("user", "Hi", "assistant", "Hello.", "assistant", "Again."), false, "turn_order.consecutive_assistant"},
		{"ends with user", c, conv("user", "Hi", "assistant", "Hello.", "user", "Thanks"), false, "turn_order.last_not_assistant"},
		{"system only", c, conv("system", "Be brief."), false, "turn_order.last_not_assistant"},
		{"skip one rule", only(Config{}, "turn_order.consecutive_assistant"), conv("user", "Hi", "user", "Hello?", "assistant", "Hello."), true, ""},
	})
}

func TestEmptyAndFences(t *testing.T) {
	e := only(Config{}, "empty.response")
	f := only(Config{}, "code_fences.unbalanced")
	runCases(t, []ruleCase{
		{"non-empty", e, qa("q", "a"), true, ""},
		{"white space", e, qa("q", " \n\t "), false, "empty.response"},
		{"no assistant", e, conv("user", "q"), false, "empty.response"},
		{"closed fence", f, qa("q", "Code:\n```go\nx := 1\n```\nDone."), true, ""},
		{"unclosed fence", f, qa("q", "Code:\n```go\nx := 1\n"), false, "code_fences.unbalanced"},
		{"two blocks", f, qa("q", "```\na\n```\ntext\n```py\nb\n```"), true, ""},
		{"three fences", f, qa("q", "```\na\n```\ntext\n```py\nb"), false, "code_fences.unbalanced"},
		{"longer fence nests shorter", f, qa("q", "````md\n```go\nx\n```\n````"), true, ""},
		{"tilde not closed by backticks", f, qa("q", "~~~\ncode\n```"), false, "code_fences.unbalanced"},
		{"inline triple backticks", f, qa("q", "Use ```x``` inline."), true, ""},
		{"indented fence", f, qa("q", "   ```\n   code\n   ```"), true, ""},
		{"prompt fence ignored", f, conv("user", "```\nunclosed", "assistant", "ok"), true, ""},
	})
}

func TestLength(t *testing.T) {
	var resp Config
	resp.Length.Response = Bounds{MinChars: 10, MaxChars: 20, MinWords: 2, MaxWords: 3, MinTokens: 3, MaxTokens: 4}
	lr := func(rules ...string) Config { return only(resp, rules...) }
	var conv3 Config
	conv3.Length.Conversation = Bounds{MaxWords: 5}
	conv3.Length.Prompt = Bounds{MinWords: 2}
	var seq Config
	seq.Length.MaxTokens = 20 // two turns: 2×4 template tokens + 12
	runCases(t, []ruleCase{
		{"max chars inside", lr("length.response.max_chars"), qa("q", strings.Repeat("a", 20)), true, ""},
		{"max chars outside", lr("length.response.max_chars"), qa("q", strings.Repeat("a", 21)), false, "length.response.max_chars"},
		{"max chars counts code points", lr("length.response.max_chars"), qa("q", strings.Repeat("é", 20)), true, ""},
		{"min chars inside", lr("length.response.min_chars"), qa("q", "abcdefghij"), true, ""},
		{"min chars outside", lr("length.response.min_chars"), qa("q", "abcdefghi"), false, "length.response.min_chars"},
		{"max words inside", lr("length.response.max_words"), qa("q", "a b c"), true, ""},
		{"max words outside", lr("length.response.max_words"), qa("q", "a b c d"), false, "length.response.max_words"},
		{"min words inside", lr("length.response.min_words"), qa("q", "a b"), true, ""},
		{"min words outside", lr("length.response.min_words"), qa("q", "ab"), false, "length.response.min_words"},
		{"max tokens inside", lr("length.response.max_tokens"), qa("q", "cat dog cat dog"), true, ""},
		{"max tokens outside", lr("length.response.max_tokens"), qa("q", "cat dog cat dog cat"), false, "length.response.max_tokens"},
		{"min tokens inside", lr("length.response.min_tokens"), qa("q", "cat dog cat"), true, ""},
		{"min tokens outside", lr("length.response.min_tokens"), qa("q", "cat dog"), false, "length.response.min_tokens"},
		{"response sums assistant turns", lr("length.response.max_words"), conv("user", "q", "assistant", "a b", "user", "q", "assistant", "c d"), false, "length.response.max_words"},
		{"prompt min words inside", only(conv3, "length.prompt.min_words"), conv("system", "Be", "user", "brief", "assistant", "ok"), true, ""},
		{"prompt min words outside", only(conv3, "length.prompt.min_words"), conv("user", "brief", "assistant", "ok"), false, "length.prompt.min_words"},
		{"conversation inside", only(conv3, "length.conversation.max_words"), qa("a b", "c d e"), true, ""},
		{"conversation outside", only(conv3, "length.conversation.max_words"), qa("a b c", "d e f"), false, "length.conversation.max_words"},
		{"sequence inside", only(seq, "length.max_tokens"), qa(strings.Repeat("cat ", 6), strings.Repeat("dog ", 6)), true, ""},
		{"sequence outside", only(seq, "length.max_tokens"), qa(strings.Repeat("cat ", 6), strings.Repeat("dog ", 7)), false, "length.max_tokens"},
	})
}

func TestMeasureTextAgreesWithCountWords(t *testing.T) {
	for _, s := range []string{"", "a", " a  b\tc\n", "héllo wörld ünïcode", "日本語 テキスト", "x=1; y=2", "a\u00a0b", "  indented\n\tcode()", "12,345.67 €"} {
		c, w, _ := measureText(s)
		w2, c2 := countWords(s)
		if c != c2 || w != w2 {
			t.Errorf("%q: measureText %d chars %d words, countWords %d chars %d words", s, c, w, c2, w2)
		}
	}
}

func TestEstimateTokens(t *testing.T) {
	for _, tc := range []struct {
		s    string
		want int
	}{
		{"", 0},
		{"hello world", 2},
		{"internationalization", 4}, // 1 + 15/5
		{"1234567", 3},
		{"a, b.", 3},
		{"日本語", 3},
		{"    return x", 4},
	} {
		if got := EstimateTokens(tc.s); got != tc.want {
			t.Errorf("EstimateTokens(%q) = %d, want %d", tc.s, got, tc.want)
		}
	}
}

func TestTruncation(t *testing.T) {
	c := only(Config{}, "truncation.mid_sentence")
	prose := "The library opens at nine on weekdays and at ten on Saturdays, and it stays closed on Sundays and public holidays"
	steps := "To repot a plant:\n\n1. Water it the day before.\n2. Ease it out of the old pot.\n3. Loosen the roots gently.\n"
	runCases(t, []ruleCase{
		{"full stop", c, qa("q", prose+"."), true, ""},
		{"question mark in quotes", c, qa("q", prose+"?\""), true, ""},
		{"long sentence without an end", c, qa("q", prose), false, "truncation.mid_sentence"},
		{"fragment after a full stop", c, qa("q", prose+". The reading room"), false, "truncation.mid_sentence"},
		{"dangling article", c, qa("q", prose+". Bring a library card and the"), false, "truncation.mid_sentence"},
		{"comma", c, qa("q", prose+","), false, "truncation.mid_sentence"},
		{"colon with nothing after", c, qa("q", prose+". Here is the timetable:"), false, "truncation.mid_sentence"},
		{"open parenthesis", c, qa("q", prose+" (see the"), false, "truncation.mid_sentence"},
		{"closing parenthesis", c, qa("q", prose+" (see the website for the summer hours)"), true, ""},
		{"placeholder", c, qa("q", "Dear Sam,\n\nThank you for the lovely flowers and the kind card you sent last week.\n\nBest regards,\n[Your Name]"), true, ""},
		{"signature line", c, qa("q", "Dear Sam,\n\nThank you for the lovely flowers and the kind card you sent last week.\n\nBest regards,\nMaria Lopez"), true, ""},
		{"closing salutation with a comma", c, qa("q", "Dear Sam,\n\nThank you for the lovely flowers and the kind card you sent last week.\n\nBest regards,"), true, ""},
		{"short answer not checked", c, qa("q", "The answer is the"), true, ""},
		{"ends with number", c, qa("q", prose+" is 42"), true, ""},
		{"closing fence", c, qa("q", prose+":\n\n```python\nprint(1)\n```"), true, ""},
		{"list item like the others", c, qa("q", steps+"4. Set it in the new pot."), true, ""},
		{"list item cut off", c, qa("q", steps+"4. Set it in the new pot and press the soil down"), false, "truncation.mid_sentence"},
		{"list without punctuation", c, qa("q", "Good houseplants for beginners:\n\n- Snake plant\n- Pothos\n- Spider plant\n- Peace lily"), true, ""},
		{"table row", c, qa("q", prose+":\n\n| a | b |\n| --- | --- |\n| 1 | 2 |"), true, ""},
		{"table row cut off", c, qa("q", prose+":\n\n| day | hours |\n| --- | --- |\n| Monday | 9 to 5 |\n| Tuesday | 9 to"), false, "truncation.mid_sentence"},
		{"verse", c, qa("q", "Snow on the rooftops\nSmoke from the chimney\nThe kettle is singing\nAnd nobody hurries today"), true, ""},
		{"hashtags", c, qa("q", "Fresh bread on a rainy morning is the best kind of comfort. #baking #sourdough"), true, ""},
		{"indented code", c, qa("q", prose+":\n\n    return total"), true, ""},
		{"code closing brace", c, qa("q", prose+"\nfunc f() {\n}"), true, ""},
		{"emoji", c, qa("q", prose+" 🙂"), true, ""},
		{"unclosed fence left to code_fences", c, qa("q", prose+":\n```go\nx := 1"), true, ""},
		{"only last turn", c, conv("user", "q", "assistant", prose, "user", "q", "assistant", prose+"."), true, ""},
	})
	fs, _ := New(c)
	if v := fs[0].Check(qa("q", prose)); !strings.Contains(v.Detail, "public holidays") {
		t.Errorf("detail does not show the ending: %+v", v)
	}
}

func TestRefusal(t *testing.T) {
	c := only(Config{}, "refusal.phrase")
	var extra Config
	extra.Refusal.ExtraPhrases = []string{"Certainly! Here's"}
	var custom Config
	custom.Refusal.Phrases = []string{"lorem ipsum"}
	runCases(t, []ruleCase{
		{"plain answer", c, qa("q", "Paris is the capital of France."), true, ""},
		{"as an AI language model", c, qa("q", "As an AI language model, I don't have feelings."), false, "refusal.phrase"},
		{"curly apostrophe", c, qa("q", "I’m sorry, but I can’t help with that request."), false, "refusal.phrase"},
		{"upper case", c, qa("q", "I CANNOT ASSIST WITH THAT."), false, "refusal.phrase"},
		{"phrase inside a word is not a match", c, qa("q", "He has an AI language model at home."), true, ""},
		{"phrase in the prompt only", c, qa("As an AI language model, answer.", "Sure: 4."), true, ""},
		{"extra phrase", only(extra, "refusal.phrase"), qa("q", "Certainly! Here's the plan."), false, "refusal.phrase"},
		{"custom list replaces defaults", only(custom, "refusal.phrase"), qa("q", "As an AI language model, hi."), true, ""},
		{"custom list", only(custom, "refusal.phrase"), qa("q", "Lorem ipsum dolor."), false, "refusal.phrase"},
	})
}

func TestEcho(t *testing.T) {
	c := only(Config{}, "echo.prompt_repeat")
	prompt := "Write a short paragraph about why regular exercise improves sleep quality for adults who work from home."
	runCases(t, []ruleCase{
		{"copy", c, qa(prompt, prompt), false, "echo.prompt_repeat"},
		{"copy with a prefix", c, qa(prompt, "Sure! "+prompt), false, "echo.prompt_repeat"},
		{"copied twice", c, qa(prompt, prompt+"\n\n"+prompt), false, "echo.prompt_repeat"},
		{"copy with an empty answer slot", c, qa(prompt, prompt+"\n\nAnswer:"), false, "echo.prompt_repeat"},
		{"restated", c, qa(prompt, "You asked me to write a short paragraph about why regular exercise improves sleep quality for adults who work from home."), false, "echo.prompt_repeat"},
		{"restated, then answered", c, qa("What's the permission that allows creating provisioning profiles called?", "The permission that allows creating provisioning profiles is called Admin."), true, ""},
		{"half the prompt quoted", c, qa("Correct the spelling in this sentence: I recieved the pakage yesterday and it was broken.", "I received the package yesterday and it was broken."), true, ""},
		{"real answer", c, qa("What is the capital of France?", "The capital of France is Paris."), true, ""},
		{"short response not checked", c, qa("yes no", "yes no"), true, ""},
		{"compares with the preceding user turn", c, conv("user", prompt, "assistant", "Fine.", "user", "Next question please.", "assistant", prompt), true, ""},
	})
	// Just inside and outside the length the check looks at: 17 prompt
	// words allow a response of 4·17+20 = 88 words. Five copies are 85;
	// three new words in front make 88 (an echo), four make 89 (too long
	// to be one, not checked).
	for _, tc := range []struct {
		front string
		keep  bool
	}{{"and so on", false}, {"and so on then", true}} {
		fs, _ := New(c)
		resp := tc.front + strings.Repeat(" "+prompt, 5)
		if _, keep := CheckAll(fs, qa(prompt, resp)); keep != tc.keep {
			t.Errorf("%d response words: keep = %v, want %v", len(strings.Fields(resp)), keep, tc.keep)
		}
	}
	// Just inside and outside the new-word allowance: 17 prompt words,
	// so max(4, 10%) = 4 new words are allowed before the copy.
	for _, tc := range []struct {
		extra string
		keep  bool
	}{{"one two three four", false}, {"one two three four five", true}} {
		fs, _ := New(c)
		if _, keep := CheckAll(fs, qa(prompt, tc.extra+" "+prompt)); keep != tc.keep {
			t.Errorf("%d new words: keep = %v, want %v", len(strings.Fields(tc.extra)), keep, tc.keep)
		}
	}
}

func TestGopherQuality(t *testing.T) {
	g := func(rule string) Config { return only(Config{}, rule) }
	lines := func(n, bullets, ellipses int) string {
		var ls []string
		ws := uniqueWords(6 * n)
		for i := 0; i < n; i++ {
			l := strings.Join(ws[6*i:6*i+6], " ")
			if i < bullets {
				l = "- " + l
			}
			if i < ellipses {
				l += "..."
			}
			ls = append(ls, l)
		}
		return strings.Join(ls, "\n")
	}
	mixed := func(plain, special int, w string) string {
		return strings.Join(append(uniqueWords(plain), rep(w, special)...), " ")
	}
	runCases(t, []ruleCase{
		{"mean length just inside min", g("gopher.mean_word_length"), qa("q", strings.Join(rep("abc", 60), " ")), true, ""},
		{"mean length just outside min", g("gopher.mean_word_length"), qa("q", strings.Join(append(rep("abc", 59), "ab"), " ")), false, "gopher.mean_word_length"},
		{"mean length just inside max", g("gopher.mean_word_length"), qa("q", strings.Join(rep("abcdefghij", 60), " ")), true, ""},
		{"mean length just outside max", g("gopher.mean_word_length"), qa("q", strings.Join(append(rep("abcdefghij", 59), "abcdefghijk"), " ")), false, "gopher.mean_word_length"},
		{"too short to judge", g("gopher.mean_word_length"), qa("q", strings.Join(rep("ab", 49), " ")), true, ""},
		{"hash ratio just inside", g("gopher.symbol_hash_ratio"), qa("q", mixed(90, 10, "a#b")), true, ""},
		{"hash ratio just outside", g("gopher.symbol_hash_ratio"), qa("q", mixed(89, 11, "a#b")), false, "gopher.symbol_hash_ratio"},
		{"ellipsis ratio just inside", g("gopher.symbol_ellipsis_ratio"), qa("q", mixed(90, 10, "a...b")), true, ""},
		{"ellipsis ratio just outside", g("gopher.symbol_ellipsis_ratio"), qa("q", mixed(89, 11, "a…b")), false, "gopher.symbol_ellipsis_ratio"},
		{"bullet lines just inside", g("gopher.bullet_lines"), qa("q", lines(20, 18, 0)), true, ""},
		{"bullet lines just outside", g("gopher.bullet_lines"), qa("q", lines(20, 19, 0)), false, "gopher.bullet_lines"},
		{"ellipsis lines just inside", g("gopher.ellipsis_lines"), qa("q", lines(10, 0, 3)), true, ""},
		{"ellipsis lines just outside", g("gopher.ellipsis_lines"), qa("q", lines(10, 0, 4)), false, "gopher.ellipsis_lines"},
		{"alpha words just inside", g("gopher.alpha_words"), qa("q", mixed(80, 20, "123")), true, ""},
		{"alpha words just outside", g("gopher.alpha_words"), qa("q", mixed(79, 21, "123")), false, "gopher.alpha_words"},
		{"stop words just inside", g("gopher.stop_words"), qa("q", words(60)+" The AND"), true, ""},
		{"stop words just outside", g("gopher.stop_words"), qa("q", words(60)+" the the the"), false, "gopher.stop_words"},
		{"code removed before measuring", g("gopher.alpha_words"), qa("q", words(60)+"\n```\n"+strings.Repeat("1 2 3 4 5\n", 40)+"```"), true, ""},
	})
	var withCode Config
	withCode.Gopher.IncludeCode = true
	runCases(t, []ruleCase{
		{"include_code measures code", only(withCode, "gopher.alpha_words"), qa("q", words(60)+"\n```\n"+strings.Repeat("1 2 3 4 5\n", 40)+"```"), false, "gopher.alpha_words"},
	})
}

// TestGopherTokens pins the tokenisation that stands in for NLTK's.
func TestGopherTokens(t *testing.T) {
	text := `Hello, world... (test) e.g. x=1 "quoted" #tag`
	var got []string
	for _, w := range gopherWords(nil, text) {
		got = append(got, text[w.start:w.end])
	}
	want := []string{"Hello", ",", "world", "...", "(", "test", ")", "e.g", ".", "x=1", `"`, "quoted", `"`, "#", "tag"}
	if !slices.Equal(got, want) {
		t.Errorf("tokens = %q, want %q", got, want)
	}
	st := MeasureGopher("The cat sat... on the mat.\n- item\n• item two…", nil)
	// The, cat, sat, ..., on, the, mat, ., -, item, •, item, two, …
	if st.Words != 14 || st.NonSymbolWords != 9 || st.StopWords != 1 || st.AlphaWords != 1 {
		t.Errorf("stats %+v", st)
	}
	if st.BulletLines != 2.0/3 || st.EllipsisLines != 1.0/3 || st.EllipsisRatio != 2.0/14 {
		t.Errorf("line stats %+v", st)
	}
}

// TestRepetitionExact checks MeasureRepetition against values worked out
// by hand from datatrove's GopherRepetitionFilter.
func TestRepetitionExact(t *testing.T) {
	st := MeasureRepetition("a b c\n\na b c\n\nd e") // 17 characters
	near := func(name string, got, want float64) {
		if math.Abs(got-want) > 1e-12 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	near("dup_para_frac", st.DupParaFrac, 1.0/3)
	near("dup_para_char_frac", st.DupParaCharFrac, 5.0/17)
	near("dup_line_frac", st.DupLineFrac, 1.0/3)
	near("dup_line_char_frac", st.DupLineCharFrac, 5.0/17)
	near("top_2gram", st.TopNGram[0], 6.0/17)  // "a b" (first of two with count 2) × 2
	near("top_3gram", st.TopNGram[1], 10.0/17) // "a b c" × 2
	near("top_4gram", st.TopNGram[2], 7.0/17)  // "a b c a" × 1
	near("dup_5gram", st.DupNGram[0], 0)

	st = MeasureRepetition("aa bb cc dd ee aa bb cc dd ee") // 29 characters
	near("dup_5gram", st.DupNGram[0], 10.0/29)              // second "aabbccddee"
	near("dup_6gram", st.DupNGram[1], 0)
	// Lines are split on runs of newlines without stripping; paragraphs
	// on two or more newlines after stripping.
	st = MeasureRepetition("\nx\n\n\nx\ny\n")
	near("dup_line_frac", st.DupLineFrac, 2.0/5) // "", x, x, y, "" → x and "" repeat
	near("dup_para_frac", st.DupParaFrac, 0)     // "x", "x\ny"
}

// boundary finds k in [lo, hi) with metric(build(k)) <= t < metric(build(k+1)).
func boundary(t *testing.T, lo, hi int, build func(int) string, metric func(string) float64, th float64) int {
	t.Helper()
	for k := lo; k < hi; k++ {
		if metric(build(k)) <= th && metric(build(k+1)) > th {
			return k
		}
	}
	t.Fatalf("no boundary for threshold %v in [%d, %d)", th, lo, hi)
	return 0
}

func TestGopherRepetition(t *testing.T) {
	var d Config
	d.Defaults()
	g := d.Gopher
	filler := uniqueWords(400)
	para := func(i int) string { return strings.Join(filler[6*i:6*i+6], " ") }
	type rc struct {
		rule   string
		th     float64
		build  func(k int) string
		metric func(RepetitionStats) float64
		lo, hi int
	}
	phrase := func(n, k int) string { // k copies of an n-word phrase after 200 unique words
		ws := slices.Clone(filler[:200])
		p := strings.Join(filler[300:300+n], " ")
		for i := 0; i < k; i++ {
			ws = append(ws, p)
		}
		return strings.Join(ws, " ")
	}
	cases := []rc{
		{"gopher.dup_para_frac", g.DupParaFrac, func(k int) string {
			var ps []string
			for i := 0; i < 10; i++ {
				ps = append(ps, para(i))
			}
			for i := 0; i < k; i++ {
				ps = append(ps, para(0))
			}
			return strings.Join(ps, "\n\n")
		}, func(s RepetitionStats) float64 { return s.DupParaFrac }, 0, 20},
		{"gopher.dup_para_char_frac", g.DupParaCharFrac, func(k int) string {
			long := strings.Join(filler[100:100+k], " ")
			return long + "\n\n" + long + "\n\n" + strings.Join(filler[:90], " ")
		}, func(s RepetitionStats) float64 { return s.DupParaCharFrac }, 1, 100},
		{"gopher.dup_line_frac", g.DupLineFrac, func(k int) string {
			var ls []string
			for i := 0; i < 10; i++ {
				ls = append(ls, para(i))
			}
			for i := 0; i < k; i++ {
				ls = append(ls, para(1))
			}
			return strings.Join(ls, "\n")
		}, func(s RepetitionStats) float64 { return s.DupLineFrac }, 0, 20},
		{"gopher.dup_line_char_frac", g.DupLineCharFrac, func(k int) string {
			long := strings.Join(filler[100:100+k], " ")
			return long + "\n" + long + "\n" + strings.Join(filler[:90], " ")
		}, func(s RepetitionStats) float64 { return s.DupLineCharFrac }, 1, 100},
	}
	for n := 2; n <= 4; n++ {
		ths := []float64{g.Top2Gram, g.Top3Gram, g.Top4Gram}
		cases = append(cases, rc{fmt.Sprintf("gopher.top_%dgram", n), ths[n-2], func(k int) string { return phrase(n, k) },
			func(s RepetitionStats) float64 { return s.TopNGram[n-2] }, 1, 100})
	}
	for n := 5; n <= 10; n++ {
		ths := []float64{g.Dup5Gram, g.Dup6Gram, g.Dup7Gram, g.Dup8Gram, g.Dup9Gram, g.Dup10Gram}
		cases = append(cases, rc{fmt.Sprintf("gopher.dup_%dgram", n), ths[n-5], func(k int) string { return phrase(n, k) },
			func(s RepetitionStats) float64 { return s.DupNGram[n-5] }, 1, 100})
	}
	for _, c := range cases {
		t.Run(c.rule, func(t *testing.T) {
			m := func(s string) float64 { return c.metric(MeasureRepetition(s)) }
			k := boundary(t, c.lo, c.hi, c.build, m, c.th)
			cfg := only(Config{}, c.rule)
			fs, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			in, out := c.build(k), c.build(k+1)
			if v := fs[0].Check(qa("q", in)); !v.Keep {
				t.Errorf("just inside (%.4f <= %.2f) dropped: %+v", m(in), c.th, v)
			} else if v.Rule != c.rule || v.Value != m(in) {
				t.Errorf("keep verdict %+v, want rule %s value %v", v, c.rule, m(in))
			}
			v, keep := CheckAll(fs, qa("q", out))
			if keep || v.Rule != c.rule || v.Threshold != c.th {
				t.Errorf("just outside (%.4f > %.2f): verdict %+v", m(out), c.th, v)
			}
			if v.Value-c.th > 0.05 {
				t.Errorf("outside value %.4f is not near the threshold %.2f", v.Value, c.th)
			}
		})
	}
}

func TestLanguageFilter(t *testing.T) {
	var enCfg Config
	enCfg.Language.Languages = []string{"en"}
	c := only(enCfg, "language.non_target")
	var de Config
	de.Language.Languages = []string{"de"}
	en := "The weather was lovely, so we took the children to the beach and stayed until sunset."
	ger := "Das Wetter war schön, also sind wir mit den Kindern an den Strand gefahren und bis zum Sonnenuntergang geblieben."
	runCases(t, []ruleCase{
		{"english kept", c, qa("q", en), true, ""},
		{"german dropped", c, qa("q", ger), false, "language.non_target"},
		{"german prompt, english response", c, qa(ger, en), true, ""},
		{"too short to judge", c, qa("q", "Danke schön!"), true, ""},
		{"code does not count", c, qa("q", ger[:30]+"\n```python\nprint('the quick brown fox jumps over the lazy dog and the cat')\n```"), true, ""},
		{"german target", only(de, "language.non_target"), qa("q", ger), true, ""},
		{"english dropped for german target", only(de, "language.non_target"), qa("q", en), false, "language.non_target"},
		{"russian is other", c, qa("q", "Мы провели все выходные, крася забор, и к вечеру воскресенья у меня болели руки."), false, "language.non_target"},
	})
}

func TestConfigDefaultsValidate(t *testing.T) {
	var c Config
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.Gopher.DupLineFrac != 0.3 || c.Gopher.Top4Gram != 0.16 || c.Echo.Threshold != 0.8 || c.Length.TemplateTokens != 4 || c.Decontam.N != 13 {
		t.Errorf("defaults not applied: %+v", c)
	}
	d := c
	d.Defaults()
	if fmt.Sprint(d) != fmt.Sprint(c) {
		t.Errorf("Defaults not idempotent")
	}
	bad := Config{Skip: []string{"gopher.nonsense"}}
	bad.Gopher.MaxBulletLines = 1.5
	bad.Length.Response.MinWords = 10
	bad.Length.Response.MaxWords = 5
	bad.Language.Languages = []string{"xx"}
	bad.Language.Scope = "system"
	bad.PII.Mode = "hash"
	bad.Decontam.N = -3
	bad.Defaults()
	err := bad.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, key := range []string{"skip:", "gopher.max_bullet_lines:", "length.response.min_words:", "language.languages:", "language.scope:", "pii.mode:", "decontam.n:"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not name %s: %v", key, err)
		}
	}
	if _, err := New(bad); err == nil {
		t.Error("New accepted an invalid config")
	}
}

func TestNewOrderAndSkip(t *testing.T) {
	fs, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fs {
		names = append(names, f.Name())
	}
	want := []string{"turn_order", "empty", "length", "code_fences", "template", "mojibake", "degenerate", "truncation", "refusal", "echo", "language"}
	if !slices.Equal(names, want) {
		t.Errorf("filters %v, want %v", names, want)
	}
	fs, _ = New(Config{Skip: []string{"language", "echo", "empty.response"}})
	if len(fs) != 8 {
		t.Errorf("%d filters after skipping 3", len(fs))
	}
	var g Config
	g.Gopher.Enabled = true
	fs, _ = New(g)
	if len(fs) != 12 || fs[10].Name() != FilterGopher {
		t.Errorf("gopher.enabled: %d filters", len(fs))
	}
	if filterRules[10].name != FilterGopher || filterRules[10].rules[7] != "gopher.dup_para_frac" || len(filterRules[10].rules) != 20 {
		t.Error("gopher rule table out of step")
	}
}

// TestKeepReportsClosestRule: a kept sample's verdict names the rule that
// came closest to its threshold, with value and threshold.
func TestKeepReportsClosestRule(t *testing.T) {
	var c Config
	c.Length.Response.MaxWords = 10
	fs, err := New(only(c, "length.response.max_words", "length.response.min_words"))
	if err != nil {
		t.Fatal(err)
	}
	v := fs[0].Check(qa("q", "one two three four five six seven eight nine"))
	if !v.Keep || v.Rule != "length.response.max_words" || v.Value != 9 || v.Threshold != 10 {
		t.Errorf("verdict %+v", v)
	}
}

// TestDefaultsOnRealisticData runs the default filters over generated
// conversations: they are well-formed English, so nearly all are kept.
func TestDefaultsOnRealisticData(t *testing.T) {
	samples := benchSamples(2000)
	fs, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	dropped := map[string]int{}
	for _, s := range samples {
		if v, keep := CheckAll(fs, s); !keep {
			dropped[v.Rule]++
		}
	}
	total := 0
	for _, n := range dropped {
		total += n
	}
	t.Logf("default filters drop %d of %d generated samples: %v", total, len(samples), dropped)
	if float64(total) > 0.05*float64(len(samples)) {
		t.Errorf("dropped %d of %d well-formed samples: %v", total, len(samples), dropped)
	}
}

func TestFiltersDoNotModifyOrAllocateMuch(t *testing.T) {
	samples := benchSamples(200)
	fs, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	before := fmt.Sprint(samples[3].Messages)
	for _, s := range samples {
		CheckAll(fs, s)
	}
	if fmt.Sprint(samples[3].Messages) != before {
		t.Error("a filter modified the sample")
	}
	i := 0
	allocs := testing.AllocsPerRun(400, func() {
		for _, f := range fs {
			f.Check(samples[i%len(samples)])
		}
		i++
	})
	if allocs > 2 {
		t.Errorf("%.1f allocations per sample", allocs)
	}
}

// TestConcurrentUse runs filters, scrubber and decontaminator from several
// goroutines at once (run with -race to check).
func TestConcurrentUse(t *testing.T) {
	samples := benchSamples(200)
	fs, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	sc, _ := NewScrubber(PIIConfig{})
	d := NewDecontaminator([]Item{{Benchmark: "b", ID: "1", Question: words(30)}}, 13)
	want := make([]Verdict, len(samples))
	for i, s := range samples {
		want[i], _ = CheckAll(fs, s)
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for i, s := range samples {
				if v, _ := CheckAll(fs, s); v != want[i] {
					done <- fmt.Errorf("sample %d: %+v, want %+v", i, v, want[i])
					return
				}
				c := *s
				c.Messages = slices.Clone(s.Messages)
				sc.Scrub(&c)
				d.Match(&c)
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
