package filters

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/sieve-data/sieve/datasets"
)

// Verdict is the answer of one rule on one sample.
//
// A drop names the rule that failed, a short stable Reason (fit for
// grouping and counting), the measured Value and the Threshold it crossed.
// A keep names the rule of the filter whose value came closest to its
// threshold, with that value and threshold, so near misses can be shown;
// a filter with nothing to measure keeps with an empty Rule.
type Verdict struct {
	// Keep is true when the sample passes.
	Keep bool `json:"keep"`
	// Rule is "filter.rule", e.g. "gopher.mean_word_length".
	Rule string `json:"rule,omitempty"`
	// Reason is short and stable, e.g. "above max" or "ends mid-sentence".
	Reason string `json:"reason,omitempty"`
	// Value is what the rule measured (a count, a length, a fraction);
	// Threshold is the bound it was compared with. Rules that find
	// something rather than measure it use 1 and 0.
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"` // see Value
	// Detail is free text for a human: the phrase found, the turn index,
	// the detected language.
	Detail string `json:"detail,omitempty"`
}

// Filter answers keep or drop for one sample. Implementations are safe for
// concurrent use and never modify the sample.
type Filter interface {
	// Name is the filter's name as written in a recipe ("gopher").
	Name() string
	// Check evaluates the filter's enabled rules in a fixed order and
	// returns the first failing one, or a keep.
	Check(s *datasets.Sample) Verdict
}

// CheckAll runs fs in order and returns the first drop and false, or a
// keep and true when every filter keeps s.
func CheckAll(fs []Filter, s *datasets.Sample) (Verdict, bool) {
	for _, f := range fs {
		if v := f.Check(s); !v.Keep {
			return v, false
		}
	}
	return Verdict{Keep: true}, true
}

// Filter names, in the order New returns them.
const (
	FilterTurnOrder  = "turn_order"
	FilterEmpty      = "empty"
	FilterLength     = "length"
	FilterCodeFences = "code_fences"
	FilterTemplate   = "template"
	FilterMojibake   = "mojibake"
	FilterDegenerate = "degenerate"
	FilterTruncation = "truncation"
	FilterRefusal    = "refusal"
	FilterEcho       = "echo"
	FilterGopher     = "gopher"
	FilterLanguage   = "language"
)

// filterRules lists every filter and its rules, in evaluation order. It
// is the vocabulary of Config.Skip and of Verdict.Rule.
var filterRules = []struct {
	name  string
	rules []string
}{
	{FilterTurnOrder, []string{"turn_order.system_not_first", "turn_order.first_not_user", "turn_order.consecutive_user", "turn_order.consecutive_assistant", "turn_order.last_not_assistant"}},
	{FilterEmpty, []string{"empty.response"}},
	{FilterLength, lengthRules()},
	{FilterCodeFences, []string{"code_fences.unbalanced"}},
	{FilterTemplate, []string{"template.leftover_tokens"}},
	{FilterMojibake, []string{"mojibake.sequences"}},
	{FilterDegenerate, []string{"degenerate.gibberish", "degenerate.loop"}},
	{FilterTruncation, []string{"truncation.mid_sentence"}},
	{FilterRefusal, []string{"refusal.phrase"}},
	{FilterEcho, []string{"echo.prompt_repeat"}},
	{FilterGopher, append(slices.Clone(qualityRuleNames), repetitionRuleNames...)},
	{FilterLanguage, []string{"language.non_target", "language.prompt_mismatch"}},
}

func lengthRules() []string {
	var out []string
	for _, scope := range []string{"prompt", "response", "conversation"} {
		for _, b := range []string{"min", "max"} {
			for _, u := range []string{"chars", "words", "tokens"} {
				out = append(out, "length."+scope+"."+b+"_"+u)
			}
		}
	}
	return append(out, "length.max_tokens")
}

// Rules returns every filter name and rule name that Config.Skip accepts,
// filters first, each followed by its rules.
func Rules() []string {
	var out []string
	for _, f := range filterRules {
		out = append(out, f.name)
		out = append(out, f.rules...)
	}
	return out
}

// Config is the `filter:` stage of a recipe. Its zero value means the
// documented defaults (docs/filters.md): Defaults fills them in and New
// calls Defaults on its own copy. In numeric settings 0 means "default"
// and -1 means "no bound".
type Config struct {
	// Skip names filters ("language") or single rules
	// ("gopher.stop_words") to leave out.
	Skip []string `yaml:"skip" json:"skip,omitempty"`
	// Length, Degenerate, Mojibake, Truncation, Refusal, Echo, Gopher and
	// Language configure the filters of those names.
	Length     LengthConfig     `yaml:"length" json:"length"`
	Degenerate DegenerateConfig `yaml:"degenerate" json:"degenerate"` // see Length
	Mojibake   MojibakeConfig   `yaml:"mojibake" json:"mojibake"`     // see Length
	Truncation TruncationConfig `yaml:"truncation" json:"truncation"` // see Length
	Refusal    RefusalConfig    `yaml:"refusal" json:"refusal"`       // see Length
	Echo       EchoConfig       `yaml:"echo" json:"echo"`             // see Length
	Gopher     GopherConfig     `yaml:"gopher" json:"gopher"`         // see Length
	Language   LanguageConfig   `yaml:"language" json:"language"`     // see Length
	// PII configures the Scrubber (NewScrubber); New ignores it.
	PII PIIConfig `yaml:"pii" json:"pii"`
	// Decontam configures decontamination (LoadBenchmark,
	// NewDecontaminator); New ignores it.
	Decontam DecontamConfig `yaml:"decontam" json:"decontam"`
}

// Bounds are inclusive length bounds of one scope; -1 is no bound.
type Bounds struct {
	MinChars  int `yaml:"min_chars" json:"min_chars,omitempty"`   // code points
	MaxChars  int `yaml:"max_chars" json:"max_chars,omitempty"`   // code points
	MinWords  int `yaml:"min_words" json:"min_words,omitempty"`   // runs of non-space characters
	MaxWords  int `yaml:"max_words" json:"max_words,omitempty"`   // runs of non-space characters
	MinTokens int `yaml:"min_tokens" json:"min_tokens,omitempty"` // EstimateTokens
	MaxTokens int `yaml:"max_tokens" json:"max_tokens,omitempty"` // EstimateTokens
}

// LengthConfig bounds the prompt (system and user turns), the response
// (assistant turns) and the whole conversation, each summed over its
// turns, and checks the conversation against a training sequence length.
type LengthConfig struct {
	Prompt       Bounds `yaml:"prompt" json:"prompt"`             // system and user turns
	Response     Bounds `yaml:"response" json:"response"`         // assistant turns
	Conversation Bounds `yaml:"conversation" json:"conversation"` // all turns
	// MaxTokens is the training sequence length: the estimated tokens of
	// all turns plus TemplateTokens per turn must not exceed it. Default
	// -1 (off).
	MaxTokens int `yaml:"max_tokens" json:"max_tokens,omitempty"`
	// TemplateTokens is the chat template's cost per turn (role markers,
	// separators); default 4, as ChatML's <|im_start|>role\n…<|im_end|>\n.
	TemplateTokens int `yaml:"template_tokens" json:"template_tokens,omitempty"`
}

// DegenerateConfig tunes the checks for token junk and generation loops
// in assistant turns (fenced and inline code removed).
type DegenerateConfig struct {
	// MinTokens: turns with fewer runs of non-space characters are not
	// judged for gibberish; default 8.
	MinTokens int `yaml:"min_tokens" json:"min_tokens,omitempty"`
	// MaxOddTokens: the largest share of tokens that are neither words,
	// numbers, markdown nor common punctuation (tokenizer pieces, braces,
	// operators, identifiers); default 0.15.
	MaxOddTokens float64 `yaml:"max_odd_tokens" json:"max_odd_tokens,omitempty"`
	// MaxBadBigrams: the largest number, per word, of adjacent function
	// words in an order English never has ("the of", "to in"); default
	// 0.02 (and at least 3 such pairs).
	MaxBadBigrams float64 `yaml:"max_bad_bigrams" json:"max_bad_bigrams,omitempty"`
	// MinLoopTokens and MinLoopCopies: a run of at least MinLoopTokens
	// tokens that repeats one unit back to back at least MinLoopCopies
	// times is a loop; defaults 30 and 4.
	MinLoopTokens int     `yaml:"min_loop_tokens" json:"min_loop_tokens,omitempty"`
	MinLoopCopies float64 `yaml:"min_loop_copies" json:"min_loop_copies,omitempty"`
}

// MojibakeConfig tunes the check for UTF-8 text decoded as Windows-1252
// or Latin-1.
type MojibakeConfig struct {
	// MinSequences: a turn with at least this many mojibake sequences
	// ("â€™", "Ã©") is dropped; default 1.
	MinSequences int `yaml:"min_sequences" json:"min_sequences,omitempty"`
}

// TruncationConfig tunes the mid-sentence check of the last assistant turn.
type TruncationConfig struct {
	// MinWords: shorter responses are not checked ("Paris", "42");
	// default 10.
	MinWords int `yaml:"min_words" json:"min_words,omitempty"`
}

// RefusalConfig lists the refusal and boilerplate phrases searched in
// assistant turns, case-insensitively, with ’ read as '.
type RefusalConfig struct {
	// Phrases replaces the default list when set.
	Phrases []string `yaml:"phrases" json:"phrases,omitempty"`
	// ExtraPhrases is added to Phrases (or to the default list).
	ExtraPhrases []string `yaml:"extra_phrases" json:"extra_phrases,omitempty"`
	// MinHelpWords: a turn with a phrase is kept when it has at least this
	// many words outside the sentences holding a refusal phrase (outside
	// the phrase itself for identity boilerplate such as "as an AI
	// language model"), that is when it goes on to help; default 25; -1
	// drops on any phrase.
	MinHelpWords int `yaml:"min_help_words" json:"min_help_words,omitempty"`
}

// EchoConfig tunes the check for responses that merely repeat the prompt.
type EchoConfig struct {
	// Threshold: a response is dropped when it holds more than this
	// fraction of the distinct word 3-grams of the preceding user turn
	// and adds few words of its own, not at its end; default 0.8.
	Threshold float64 `yaml:"threshold" json:"threshold,omitempty"`
	// MinWords: shorter responses are not checked; default 3.
	MinWords int `yaml:"min_words" json:"min_words,omitempty"`
}

// GopherConfig holds the Gopher quality and repetition thresholds (Rae et
// al. 2021, Table A1 and §A.1.1; the same defaults as datatrove's
// GopherQualityFilter and GopherRepetitionFilter). They apply to each
// assistant turn on its own, with fenced code blocks removed unless
// IncludeCode, and only to turns with at least MinWords non-symbol words.
type GopherConfig struct {
	// Enabled turns the Gopher rules on. They were written for web pages
	// and drop good SFT answers (lists, tables, arithmetic, translations,
	// songs), so they are off by default.
	Enabled bool `yaml:"enabled" json:"enabled,omitempty"`
	// MinWords gates every Gopher rule; default 50 (Gopher's minimum
	// document length, below which its statistics are noise).
	MinWords int `yaml:"min_words" json:"min_words,omitempty"`
	// IncludeCode measures fenced code blocks too (default: removed).
	IncludeCode bool `yaml:"include_code" json:"include_code,omitempty"`

	MinMeanWordLength  float64  `yaml:"min_mean_word_length" json:"min_mean_word_length,omitempty"`   // 3
	MaxMeanWordLength  float64  `yaml:"max_mean_word_length" json:"max_mean_word_length,omitempty"`   // 10
	MaxSymbolWordRatio float64  `yaml:"max_symbol_word_ratio" json:"max_symbol_word_ratio,omitempty"` // 0.1
	MaxBulletLines     float64  `yaml:"max_bullet_lines" json:"max_bullet_lines,omitempty"`           // 0.9
	MaxEllipsisLines   float64  `yaml:"max_ellipsis_lines" json:"max_ellipsis_lines,omitempty"`       // 0.3
	MinAlphaWords      float64  `yaml:"min_alpha_words" json:"min_alpha_words,omitempty"`             // 0.8
	MinStopWords       int      `yaml:"min_stop_words" json:"min_stop_words,omitempty"`               // 2
	StopWords          []string `yaml:"stop_words" json:"stop_words,omitempty"`                       // the be to of and that have with

	DupLineFrac     float64 `yaml:"dup_line_frac" json:"dup_line_frac,omitempty"`           // 0.3
	DupParaFrac     float64 `yaml:"dup_para_frac" json:"dup_para_frac,omitempty"`           // 0.3
	DupLineCharFrac float64 `yaml:"dup_line_char_frac" json:"dup_line_char_frac,omitempty"` // 0.2
	DupParaCharFrac float64 `yaml:"dup_para_char_frac" json:"dup_para_char_frac,omitempty"` // 0.2
	Top2Gram        float64 `yaml:"top_2gram" json:"top_2gram,omitempty"`                   // 0.20
	Top3Gram        float64 `yaml:"top_3gram" json:"top_3gram,omitempty"`                   // 0.18
	Top4Gram        float64 `yaml:"top_4gram" json:"top_4gram,omitempty"`                   // 0.16
	Dup5Gram        float64 `yaml:"dup_5gram" json:"dup_5gram,omitempty"`                   // 0.15
	Dup6Gram        float64 `yaml:"dup_6gram" json:"dup_6gram,omitempty"`                   // 0.14
	Dup7Gram        float64 `yaml:"dup_7gram" json:"dup_7gram,omitempty"`                   // 0.13
	Dup8Gram        float64 `yaml:"dup_8gram" json:"dup_8gram,omitempty"`                   // 0.12
	Dup9Gram        float64 `yaml:"dup_9gram" json:"dup_9gram,omitempty"`                   // 0.11
	Dup10Gram       float64 `yaml:"dup_10gram" json:"dup_10gram,omitempty"`                 // 0.10
}

// LanguageConfig tunes the language checks: the answer must be in the
// prompt's language unless the prompt asks for another one
// (language.prompt_mismatch), and, when Languages is set, in one of them
// (language.non_target).
type LanguageConfig struct {
	// Languages to keep, from Languages(); default none (any language).
	// "other" keeps undetected languages too.
	Languages []string `yaml:"languages" json:"languages,omitempty"`
	// MinConfidence: a sample is dropped only when a language outside
	// Languages is detected with at least this confidence; default 0.5.
	MinConfidence float64 `yaml:"min_confidence" json:"min_confidence,omitempty"`
	// MinLetters: texts with fewer letters (after removing code) are not
	// judged; default 40.
	MinLetters int `yaml:"min_letters" json:"min_letters,omitempty"`
	// Scope is the text judged: response (default: the assistant turns),
	// prompt (the user turns) or conversation (both).
	Scope string `yaml:"scope" json:"scope,omitempty"`
}

// Defaults replaces every zero setting with its documented default.
func (c *Config) Defaults() {
	l := &c.Length
	def(&l.Prompt.MinChars, -1)
	def(&l.Prompt.MaxChars, -1)
	def(&l.Prompt.MinWords, 1)
	def(&l.Prompt.MaxWords, 100_000)
	def(&l.Prompt.MinTokens, -1)
	def(&l.Prompt.MaxTokens, -1)
	def(&l.Response.MinChars, -1)
	def(&l.Response.MaxChars, -1)
	def(&l.Response.MinWords, 1)
	def(&l.Response.MaxWords, 100_000)
	def(&l.Response.MinTokens, -1)
	def(&l.Response.MaxTokens, -1)
	def(&l.Conversation.MinChars, -1)
	def(&l.Conversation.MaxChars, -1)
	def(&l.Conversation.MinWords, -1)
	def(&l.Conversation.MaxWords, -1)
	def(&l.Conversation.MinTokens, -1)
	def(&l.Conversation.MaxTokens, -1)
	def(&l.MaxTokens, -1)
	def(&l.TemplateTokens, 4)

	d := &c.Degenerate
	def(&d.MinTokens, 8)
	deff(&d.MaxOddTokens, 0.15)
	deff(&d.MaxBadBigrams, 0.02)
	def(&d.MinLoopTokens, 30)
	deff(&d.MinLoopCopies, 4)
	def(&c.Mojibake.MinSequences, 1)

	def(&c.Truncation.MinWords, 10)
	if c.Refusal.Phrases == nil {
		c.Refusal.Phrases = slices.Clone(DefaultRefusalPhrases)
	}
	def(&c.Refusal.MinHelpWords, 25)
	deff(&c.Echo.Threshold, 0.8)
	def(&c.Echo.MinWords, 3)

	g := &c.Gopher
	def(&g.MinWords, 50)
	deff(&g.MinMeanWordLength, 3)
	deff(&g.MaxMeanWordLength, 10)
	deff(&g.MaxSymbolWordRatio, 0.1)
	deff(&g.MaxBulletLines, 0.9)
	deff(&g.MaxEllipsisLines, 0.3)
	deff(&g.MinAlphaWords, 0.8)
	def(&g.MinStopWords, 2)
	if g.StopWords == nil {
		g.StopWords = slices.Clone(DefaultStopWords)
	}
	deff(&g.DupLineFrac, 0.3)
	deff(&g.DupParaFrac, 0.3)
	deff(&g.DupLineCharFrac, 0.2)
	deff(&g.DupParaCharFrac, 0.2)
	deff(&g.Top2Gram, 0.20)
	deff(&g.Top3Gram, 0.18)
	deff(&g.Top4Gram, 0.16)
	deff(&g.Dup5Gram, 0.15)
	deff(&g.Dup6Gram, 0.14)
	deff(&g.Dup7Gram, 0.13)
	deff(&g.Dup8Gram, 0.12)
	deff(&g.Dup9Gram, 0.11)
	deff(&g.Dup10Gram, 0.10)

	deff(&c.Language.MinConfidence, 0.5)
	def(&c.Language.MinLetters, 40)
	if c.Language.Scope == "" {
		c.Language.Scope = "response"
	}
	c.PII.Defaults()
	c.Decontam.Defaults()
}

func def(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func deff(p *float64, v float64) {
	if *p == 0 {
		*p = v
	}
}

// DefaultStopWords are Gopher's stop words (Rae et al. 2021, §A.1.1).
var DefaultStopWords = []string{"the", "be", "to", "of", "and", "that", "have", "with"}

// DefaultRefusalPhrases are matched case-insensitively in assistant turns.
// They are the refusal and model-identity boilerplate that open SFT sets
// strip (the "unfiltered"/"uncensored" releases of WizardLM and Vicuna
// data filter on phrases like these).
var DefaultRefusalPhrases = []string{
	"as an ai language model",
	"as a language model",
	"as an ai assistant, i",
	"as an ai, i",
	"i'm sorry, but i can't",
	"i'm sorry, but i cannot",
	"i am sorry, but i cannot",
	"i apologize, but i cannot",
	"i apologize, but i can't",
	"i cannot assist with",
	"i can't assist with",
	"i cannot help with that",
	"i can't help with that",
	"i'm unable to assist",
	"i am unable to assist",
	"i cannot fulfill",
	"i can't fulfill",
	"i cannot comply",
	"i can't comply",
	"i'm not able to provide",
	"my knowledge cutoff",
	"as of my last knowledge update",
	"as of my last training",
	"i don't have personal opinions",
	"i do not have personal opinions",
	"i don't have the ability to browse",
	"developed by openai",
	"trained by openai",
	"created by openai",
	"i cannot answer",
	"i can't answer",
	"i cannot provide",
	"i can't provide",
	"i am not able to provide",
	"i am unable to provide",
	"i'm unable to provide",
	"i'm unable to help",
	"i am unable to help",
	"i'm not able to help",
	"i am not able to help",
	"i won't be able to",
	"i will not be able to",
	"i am not capable of",
	"i'm not capable of",
	"i do not feel comfortable",
	"i don't feel comfortable",
	"i cannot recommend",
	"i do not have access to real-time",
	"i don't have access to real-time",
	"not something i can help with",
	"i am unable to complete",
	"i'm unable to complete",
	"i cannot do",
	"i can't do that",
}

// Validate reports every invalid setting, each prefixed with its key
// ("gopher.max_bullet_lines: …"). Call it after Defaults.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, a...)))
	}
	known := map[string]bool{}
	for _, r := range Rules() {
		known[r] = true
	}
	for _, s := range c.Skip {
		if !known[s] {
			bad("skip", "unknown filter or rule %q (known: %s)", s, strings.Join(filterNames(), ", "))
		}
	}
	bounds := func(key string, b Bounds) {
		for _, f := range []struct {
			k string
			v int
		}{{"min_chars", b.MinChars}, {"max_chars", b.MaxChars}, {"min_words", b.MinWords}, {"max_words", b.MaxWords}, {"min_tokens", b.MinTokens}, {"max_tokens", b.MaxTokens}} {
			if f.v < -1 {
				bad(key+"."+f.k, "must be a count or -1 (no bound), got %d", f.v)
			}
		}
		pairs := [][3]any{{"chars", b.MinChars, b.MaxChars}, {"words", b.MinWords, b.MaxWords}, {"tokens", b.MinTokens, b.MaxTokens}}
		for _, p := range pairs {
			lo, hi := p[1].(int), p[2].(int)
			if lo > 0 && hi > 0 && lo > hi {
				bad(key+".min_"+p[0].(string), "%d is above max_%s %d", lo, p[0], hi)
			}
		}
	}
	bounds("length.prompt", c.Length.Prompt)
	bounds("length.response", c.Length.Response)
	bounds("length.conversation", c.Length.Conversation)
	if c.Length.MaxTokens < -1 {
		bad("length.max_tokens", "must be a token count or -1 (off), got %d", c.Length.MaxTokens)
	}
	if c.Length.TemplateTokens < -1 {
		bad("length.template_tokens", "must be >= 0 or -1 (none), got %d", c.Length.TemplateTokens)
	}
	dg := &c.Degenerate
	if dg.MinTokens < -1 {
		bad("degenerate.min_tokens", "must be >= 1 or -1, got %d", dg.MinTokens)
	}
	if math.IsNaN(dg.MaxOddTokens) || (dg.MaxOddTokens != -1 && (dg.MaxOddTokens <= 0 || dg.MaxOddTokens > 1)) {
		bad("degenerate.max_odd_tokens", "must be in (0, 1] or -1 (off), got %v", dg.MaxOddTokens)
	}
	if math.IsNaN(dg.MaxBadBigrams) || (dg.MaxBadBigrams != -1 && (dg.MaxBadBigrams <= 0 || dg.MaxBadBigrams > 1)) {
		bad("degenerate.max_bad_bigrams", "must be in (0, 1] or -1 (off), got %v", dg.MaxBadBigrams)
	}
	if dg.MinLoopTokens < 1 {
		bad("degenerate.min_loop_tokens", "must be >= 1, got %d", dg.MinLoopTokens)
	}
	if math.IsNaN(dg.MinLoopCopies) || dg.MinLoopCopies < 2 {
		bad("degenerate.min_loop_copies", "must be >= 2, got %v", dg.MinLoopCopies)
	}
	if c.Mojibake.MinSequences < 1 {
		bad("mojibake.min_sequences", "must be >= 1, got %d", c.Mojibake.MinSequences)
	}
	if c.Refusal.MinHelpWords < -1 {
		bad("refusal.min_help_words", "must be >= 1 or -1 (any phrase drops), got %d", c.Refusal.MinHelpWords)
	}
	if c.Truncation.MinWords < -1 {
		bad("truncation.min_words", "must be >= 1 or -1, got %d", c.Truncation.MinWords)
	}
	for i, p := range append(slices.Clone(c.Refusal.Phrases), c.Refusal.ExtraPhrases...) {
		if strings.TrimSpace(p) == "" {
			bad("refusal.phrases", "phrase %d is empty", i)
		}
	}
	frac := func(key string, v float64) {
		if math.IsNaN(v) || (v != -1 && (v <= 0 || v > 1)) {
			bad(key, "must be in (0, 1] or -1 (off), got %v", v)
		}
	}
	frac("echo.threshold", c.Echo.Threshold)
	if c.Echo.MinWords < -1 {
		bad("echo.min_words", "must be >= 1 or -1, got %d", c.Echo.MinWords)
	}
	g := &c.Gopher
	if g.MinWords < -1 {
		bad("gopher.min_words", "must be >= 1 or -1 (always), got %d", g.MinWords)
	}
	if g.MinMeanWordLength != -1 && g.MinMeanWordLength <= 0 {
		bad("gopher.min_mean_word_length", "must be > 0 or -1, got %v", g.MinMeanWordLength)
	}
	if g.MaxMeanWordLength != -1 && g.MaxMeanWordLength <= 0 {
		bad("gopher.max_mean_word_length", "must be > 0 or -1, got %v", g.MaxMeanWordLength)
	}
	if g.MinMeanWordLength > 0 && g.MaxMeanWordLength > 0 && g.MinMeanWordLength > g.MaxMeanWordLength {
		bad("gopher.min_mean_word_length", "%v is above max_mean_word_length %v", g.MinMeanWordLength, g.MaxMeanWordLength)
	}
	if g.MaxSymbolWordRatio != -1 && g.MaxSymbolWordRatio <= 0 {
		bad("gopher.max_symbol_word_ratio", "must be > 0 or -1, got %v", g.MaxSymbolWordRatio)
	}
	frac("gopher.max_bullet_lines", g.MaxBulletLines)
	frac("gopher.max_ellipsis_lines", g.MaxEllipsisLines)
	frac("gopher.min_alpha_words", g.MinAlphaWords)
	if g.MinStopWords < -1 {
		bad("gopher.min_stop_words", "must be >= 1 or -1, got %d", g.MinStopWords)
	}
	if g.MinStopWords > len(g.StopWords) {
		bad("gopher.min_stop_words", "%d is more than the %d stop_words", g.MinStopWords, len(g.StopWords))
	}
	for _, f := range []struct {
		k string
		v float64
	}{{"dup_line_frac", g.DupLineFrac}, {"dup_para_frac", g.DupParaFrac}, {"dup_line_char_frac", g.DupLineCharFrac}, {"dup_para_char_frac", g.DupParaCharFrac},
		{"top_2gram", g.Top2Gram}, {"top_3gram", g.Top3Gram}, {"top_4gram", g.Top4Gram},
		{"dup_5gram", g.Dup5Gram}, {"dup_6gram", g.Dup6Gram}, {"dup_7gram", g.Dup7Gram}, {"dup_8gram", g.Dup8Gram}, {"dup_9gram", g.Dup9Gram}, {"dup_10gram", g.Dup10Gram}} {
		frac("gopher."+f.k, f.v)
	}
	supported := map[string]bool{}
	for _, l := range Languages() {
		supported[l] = true
	}
	if c.Language.Languages != nil && len(c.Language.Languages) == 0 {
		bad("language.languages", "empty (leave it out to accept any language, or skip the language filter)")
	}
	for _, l := range c.Language.Languages {
		if !supported[l] {
			bad("language.languages", "unsupported language %q (supported: %s)", l, strings.Join(Languages(), ", "))
		}
	}
	frac("language.min_confidence", c.Language.MinConfidence)
	if c.Language.MinLetters < -1 {
		bad("language.min_letters", "must be >= 1 or -1, got %d", c.Language.MinLetters)
	}
	switch c.Language.Scope {
	case "response", "prompt", "conversation":
	default:
		bad("language.scope", "unknown scope %q (want response, prompt or conversation)", c.Language.Scope)
	}
	if err := c.PII.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Decontam.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func filterNames() []string {
	out := make([]string, len(filterRules))
	for i, f := range filterRules {
		out[i] = f.name
	}
	return out
}

// New builds the enabled filters of cfg (after Defaults) in evaluation
// order: turn_order, empty, length, code_fences, template, mojibake,
// degenerate, truncation, refusal, echo, gopher (only with
// gopher.enabled), language. A filter named in Skip is left out; a rule
// named in Skip is not evaluated.
func New(cfg Config) ([]Filter, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	skip := map[string]bool{}
	for _, s := range cfg.Skip {
		skip[s] = true
	}
	var out []Filter
	for _, f := range filterRules {
		if skip[f.name] || (f.name == FilterGopher && !cfg.Gopher.Enabled) {
			continue
		}
		var on ruleSet
		enabled := false
		for i, r := range f.rules {
			if !skip[r] {
				on.set(i)
				enabled = true
			}
		}
		if !enabled {
			continue
		}
		var flt Filter
		switch f.name {
		case FilterTurnOrder:
			flt = &turnOrderFilter{on: on}
		case FilterEmpty:
			flt = &emptyFilter{}
		case FilterLength:
			flt = newLengthFilter(cfg.Length, on)
		case FilterCodeFences:
			flt = &fenceFilter{}
		case FilterTemplate:
			flt = templateFilter{}
		case FilterMojibake:
			flt = &mojibakeFilter{min: cfg.Mojibake.MinSequences}
		case FilterDegenerate:
			flt = &degenerateFilter{on: on, c: cfg.Degenerate}
		case FilterTruncation:
			flt = &truncationFilter{minWords: cfg.Truncation.MinWords}
		case FilterRefusal:
			flt = newRefusalFilter(append(slices.Clone(cfg.Refusal.Phrases), cfg.Refusal.ExtraPhrases...), cfg.Refusal.MinHelpWords)
		case FilterEcho:
			flt = &echoFilter{threshold: cfg.Echo.Threshold, minWords: cfg.Echo.MinWords}
		case FilterGopher:
			flt = newGopherFilter(cfg.Gopher, on)
		case FilterLanguage:
			lf, err := newLanguageFilter(cfg.Language, on)
			if err != nil {
				return nil, err
			}
			flt = lf
		}
		out = append(out, flt)
	}
	return out, nil
}

// ruleSet is a bit set of the enabled rules of one filter, by index in
// filterRules.
type ruleSet uint64

func (r *ruleSet) set(i int)     { *r |= 1 << i }
func (r ruleSet) has(i int) bool { return r&(1<<i) != 0 }

// closest tracks, among the rules a filter evaluated on a kept sample, the
// one whose value came closest to its threshold (relative margin).
type closest struct {
	v      Verdict
	margin float64
}

// max records a rule that drops values above threshold; min one that
// drops values below. Disabled thresholds (-1) are not recorded.
func (c *closest) max(rule string, value, threshold float64) {
	if threshold < 0 {
		return
	}
	c.note(rule, value, threshold, (threshold-value)/math.Max(math.Abs(threshold), 1e-9))
}

func (c *closest) min(rule string, value, threshold float64) {
	if threshold < 0 {
		return
	}
	c.note(rule, value, threshold, (value-threshold)/math.Max(math.Abs(threshold), 1e-9))
}

func (c *closest) note(rule string, value, threshold, margin float64) {
	if c.v.Rule == "" || margin < c.margin {
		c.v = Verdict{Keep: true, Rule: rule, Value: value, Threshold: threshold}
		c.margin = margin
	}
}

func (c *closest) keep() Verdict {
	c.v.Keep = true
	return c.v
}

func drop(rule, reason string, value, threshold float64, detail string) Verdict {
	return Verdict{Rule: rule, Reason: reason, Value: value, Threshold: threshold, Detail: detail}
}
