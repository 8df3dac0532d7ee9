package synth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// DefaultBlockedWords are Self-Instruct's: instructions mentioning them
// usually need something a text-only model cannot see or make.
var DefaultBlockedWords = []string{"image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
	"map", "maps", "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"}

// SelfInstructConfig configures SelfInstruct; zero values mean the
// defaults.
type SelfInstructConfig struct {
	// Count is how many new instructions one prompt asks for; default 8.
	Count int `yaml:"count,omitempty" json:"count,omitempty"`
	// NoveltyThreshold: an instruction whose ROUGE-L F against a known
	// one (the seeds, Input.Known, the batch) reaches it is rejected;
	// default 0.7, as in Self-Instruct.
	NoveltyThreshold float64 `yaml:"novelty_threshold,omitempty" json:"novelty_threshold,omitempty"`
	// MinWords and MaxWords bound an instruction's words; default 3 and
	// 150.
	MinWords int `yaml:"min_words,omitempty" json:"min_words,omitempty"`
	MaxWords int `yaml:"max_words,omitempty" json:"max_words,omitempty"`
	// BlockedWords reject instructions containing them (whole words,
	// case-insensitive); nil means DefaultBlockedWords, an empty list
	// none.
	BlockedWords []string `yaml:"blocked_words,omitempty" json:"blocked_words,omitempty"`
	// MinAnswerWords: shorter answers are rejected; default 1 (classification
	// answers are one word).
	MinAnswerWords int `yaml:"min_answer_words,omitempty" json:"min_answer_words,omitempty"`
	// Generate is the instruction-writing call (default temperature 0.7,
	// max_tokens 2048); Answer the answering call (temperature 0,
	// max_tokens 2048).
	Generate Sampling `yaml:"generate,omitempty" json:"generate"`
	Answer   Sampling `yaml:"answer,omitempty" json:"answer"`
	// Prompts point templates at files: self_instruct (data:
	// SelfInstructData) and answer (data: AnswerData).
	Prompts map[string]string `yaml:"prompts,omitempty" json:"prompts,omitempty"`
}

// SelfInstructData is the data of the self_instruct template.
type SelfInstructData struct {
	// Examples are the seed instructions, numbered from 1.
	Examples []Example
	// Count is how many new instructions to write.
	Count int
}

// Example is one numbered example instruction.
type Example struct {
	N    int    // 1, 2, …
	Text string // the seed's user turn
}

// AnswerData is the data of the answer template.
type AnswerData struct {
	Instruction string // the instruction to answer (or to rewrite)
}

// SelfInstruct is the Self-Instruct task (Wang et al. 2023): from seed
// samples shown as examples, the model writes new instructions as a
// numbered list (parsed by ParseList); each is filtered (length, blocked
// words, ROUGE-L novelty) and then answered in a call of its own.
type SelfInstruct struct {
	gen
	cfg     SelfInstructConfig
	blocked []string
}

// NewSelfInstruct checks cfg, fills in its defaults and loads its
// templates.
func NewSelfInstruct(cfg SelfInstructConfig) (*SelfInstruct, error) {
	if cfg.Count == 0 {
		cfg.Count = 8
	}
	if cfg.NoveltyThreshold == 0 {
		cfg.NoveltyThreshold = DefaultNoveltyThreshold
	}
	if cfg.MinWords == 0 {
		cfg.MinWords = 3
	}
	if cfg.MaxWords == 0 {
		cfg.MaxWords = 150
	}
	if cfg.BlockedWords == nil {
		cfg.BlockedWords = DefaultBlockedWords
	}
	if cfg.MinAnswerWords == 0 {
		cfg.MinAnswerWords = 1
	}
	var errs []error
	if cfg.Count < 1 || cfg.Count > 100 {
		errs = append(errs, fmt.Errorf("count %d is not in [1, 100]", cfg.Count))
	}
	if cfg.NoveltyThreshold < 0 || cfg.NoveltyThreshold > 1 {
		errs = append(errs, fmt.Errorf("novelty_threshold %v is not in (0, 1]", cfg.NoveltyThreshold))
	}
	if cfg.MinWords < 0 || cfg.MaxWords < cfg.MinWords {
		errs = append(errs, fmt.Errorf("min_words %d and max_words %d: want 0 ≤ min ≤ max", cfg.MinWords, cfg.MaxWords))
	}
	errs = append(errs, cfg.Generate.validate("generate"), cfg.Answer.validate("answer"))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("synth: self_instruct: %w", err)
	}
	t, err := loadTemplates("self_instruct", cfg.Prompts, map[string]probe{
		"self_instruct": {SelfInstructData{Examples: []Example{{1, "Probe example."}}, Count: 3}, "Probe example.", "Examples"},
		"answer":        {AnswerData{Instruction: "Probe instruction."}, "Probe instruction.", "Instruction"},
	})
	if err != nil {
		return nil, err
	}
	s := &SelfInstruct{gen: gen{name: "self_instruct", tmpls: t}, cfg: cfg}
	for _, w := range cfg.BlockedWords {
		if w = strings.ToLower(strings.TrimSpace(w)); w != "" {
			s.blocked = append(s.blocked, " "+strings.Join(RougeTokens(w), " ")+" ")
		}
	}
	return s, nil
}

// Name returns "self_instruct".
func (s *SelfInstruct) Name() string { return s.name }

// Generate makes one generation call with in.Samples as the examples,
// then one answering call per instruction that survives the filters.
// Seeds without exactly one user turn are not used; with none left
// Generate returns an error.
func (s *SelfInstruct) Generate(ctx context.Context, c *llm.Client, in Input) ([]datasets.Sample, []datasets.Rejected, error) {
	var examples []Example
	var seedIDs []string
	local := NewNoveltyIndex(s.cfg.NoveltyThreshold)
	license, first := "", true
	for _, sd := range in.Samples {
		_, text, ok := instruction(sd)
		if !ok {
			continue
		}
		examples = append(examples, Example{N: len(examples) + 1, Text: strings.TrimSpace(text)})
		seedIDs = append(seedIDs, sd.ID)
		local.Add(text)
		if first {
			license, first = sd.License, false
		} else if sd.License != license {
			license = ""
		}
	}
	if len(examples) == 0 {
		return nil, nil, errors.New("synth: self_instruct: no seed sample with exactly one user turn")
	}
	prompt, err := s.tmpls["self_instruct"].Render(SelfInstructData{Examples: examples, Count: s.cfg.Count})
	if err != nil {
		return nil, nil, err
	}
	pv := func(model string, keys []string, used ...string) Provenance {
		p := s.prov(c, model, keys, used...)
		p.Seeds = seedIDs
		return p
	}
	resp, err := c.Chat(ctx, s.cfg.Generate.request([]datasets.Message{user(prompt)}, 0.7, 2048))
	if err != nil {
		r, err := s.callError(err, pv("", nil, "self_instruct"), user(prompt))
		if err != nil {
			return nil, nil, err
		}
		return nil, []datasets.Rejected{r}, nil
	}

	var rej []datasets.Rejected
	listP := pv(resp.Model, []string{resp.Key}, "self_instruct")
	items := ParseList(resp.Text)
	if resp.FinishReason == "length" && len(items) > 0 {
		rej = append(rej, s.reject(ReasonTruncated, "last list item cut off by the token limit", listP, user(items[len(items)-1])))
		items = items[:len(items)-1]
	}
	if len(items) == 0 {
		rej = append(rej, s.reject(ReasonParse, "no list items in the answer", listP, user(prompt), assistant(nonEmpty(resp.Text))))
		return nil, rej, nil
	}

	var out []datasets.Sample
	for _, inst := range items {
		if reason, detail := s.filter(inst); reason != "" {
			rej = append(rej, s.reject(reason, detail, listP, user(inst)))
			continue
		}
		ok, score, near := local.Novel(inst)
		if ok && in.Known != nil {
			var sc float64
			ok, sc, near = in.Known.TryAdd(inst)
			score = max(score, sc)
		}
		if !ok {
			rej = append(rej, s.reject(ReasonNotNovel, fmt.Sprintf("rouge-l %.3f ≥ %.2f with %q", score, s.cfg.NoveltyThreshold, cut(near, 80)), listP, user(inst)))
			continue
		}
		local.Add(inst)

		q, err := s.tmpls["answer"].Render(AnswerData{Instruction: inst})
		if err != nil {
			return out, rej, err
		}
		ans, err := c.Chat(ctx, s.cfg.Answer.request([]datasets.Message{user(q)}, 0, 2048))
		if err != nil {
			r, err := s.callError(err, pv(resp.Model, []string{resp.Key}, "self_instruct", "answer"), user(inst))
			if err != nil {
				return out, rej, err
			}
			rej = append(rej, r)
			continue
		}
		text := strings.TrimSpace(ans.Text)
		msgs := []datasets.Message{user(inst), assistant(nonEmpty(text))}
		p := pv(ans.Model, []string{resp.Key, ans.Key}, "self_instruct", "answer")
		if reason, detail := checkAnswer(text, ans.FinishReason, s.cfg.MinAnswerWords); reason != "" {
			rej = append(rej, s.reject(reason, detail, p, msgs...))
			continue
		}
		nov := round3(score)
		p.Novelty = &nov
		out = append(out, makeSample(msgs, datasets.Source{Dataset: s.name}, license, p))
	}
	return out, rej, nil
}

// filter applies Self-Instruct's heuristics to a new instruction.
func (s *SelfInstruct) filter(inst string) (reason, detail string) {
	w := RougeTokens(inst)
	if len(w) < s.cfg.MinWords {
		return ReasonFiltered, fmt.Sprintf("%d words < %d", len(w), s.cfg.MinWords)
	}
	if len(w) > s.cfg.MaxWords {
		return ReasonFiltered, fmt.Sprintf("%d words > %d", len(w), s.cfg.MaxWords)
	}
	joined := " " + strings.Join(w, " ") + " "
	for _, b := range s.blocked {
		if strings.Contains(joined, b) {
			return ReasonFiltered, "mentions " + strings.TrimSpace(b)
		}
	}
	if r := []rune(inst)[0]; unicode.IsPunct(r) && r != '"' && r != '\'' && r != '(' && r != '¿' && r != '¡' {
		return ReasonFiltered, "starts with punctuation"
	}
	return "", ""
}

func nonEmpty(s string) string {
	if strings.TrimSpace(s) == "" {
		return "(empty)"
	}
	return s
}

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
