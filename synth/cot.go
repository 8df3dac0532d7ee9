package synth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// Styles of a chain-of-thought assistant turn.
const (
	// StyleThink writes "<think>\nREASONING\n</think>\n\nANSWER", the
	// convention of reasoning models (DeepSeek-R1, Qwen3) that chat
	// templates and trainers understand.
	StyleThink = "think"
	// StyleFinalAnswer writes "REASONING\n\nFinal answer: ANSWER".
	StyleFinalAnswer = "final_answer"
)

// CoTConfig configures ChainOfThought; zero values mean the defaults.
type CoTConfig struct {
	// Style of the assistant turn: think (default) or final_answer.
	Style string `yaml:"style,omitempty" json:"style,omitempty"`
	// MinAnswerWords: shorter final answers are rejected; default 1.
	MinAnswerWords int `yaml:"min_answer_words,omitempty" json:"min_answer_words,omitempty"`
	// Answer is the call (default temperature 0, max_tokens 4096).
	Answer Sampling `yaml:"answer,omitempty" json:"answer"`
	// Prompts point the cot template (data: CoTData) at a file.
	Prompts map[string]string `yaml:"prompts,omitempty" json:"prompts,omitempty"`
}

// CoTData is the data of the cot template.
type CoTData struct {
	// Prompt is the last user turn.
	Prompt string
}

// ChainOfThought writes step-by-step answers for existing prompts: the
// last user turn is wrapped in the cot template, which asks for
// <reasoning>…</reasoning> and then <answer>…</answer>; the reply is
// split (SplitReasoning) and written in the configured style
// (FormatCoT). The new sample is the original conversation up to its
// last user turn plus the new assistant turn.
type ChainOfThought struct {
	gen
	cfg CoTConfig
}

// NewChainOfThought checks cfg, fills in its defaults and loads its
// template.
func NewChainOfThought(cfg CoTConfig) (*ChainOfThought, error) {
	if cfg.Style == "" {
		cfg.Style = StyleThink
	}
	if cfg.MinAnswerWords == 0 {
		cfg.MinAnswerWords = 1
	}
	var errs []error
	if cfg.Style != StyleThink && cfg.Style != StyleFinalAnswer {
		errs = append(errs, fmt.Errorf("style %q is not one of think, final_answer", cfg.Style))
	}
	errs = append(errs, cfg.Answer.validate("answer"))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("synth: chain_of_thought: %w", err)
	}
	t, err := loadTemplates("chain_of_thought", cfg.Prompts, map[string]probe{
		"cot": {CoTData{Prompt: "Probe prompt."}, "Probe prompt.", "Prompt"},
	})
	if err != nil {
		return nil, err
	}
	return &ChainOfThought{gen: gen{name: "chain_of_thought", tmpls: t}, cfg: cfg}, nil
}

// Name returns "chain_of_thought".
func (t *ChainOfThought) Name() string { return t.name }

// Generate answers each of in.Samples (those with a user turn; others
// are rejected with ReasonUnusable).
func (t *ChainOfThought) Generate(ctx context.Context, c *llm.Client, in Input) ([]datasets.Sample, []datasets.Rejected, error) {
	var out []datasets.Sample
	var rej []datasets.Rejected
	for _, sd := range in.Samples {
		last := -1
		for i, m := range sd.Messages {
			if m.Role == datasets.RoleUser {
				last = i
			}
		}
		if last < 0 || strings.TrimSpace(sd.Messages[last].Content) == "" {
			rej = append(rej, datasets.Rejected{Stage: t.name, Reason: ReasonUnusable, Detail: "no user turn", Sample: sd})
			continue
		}
		prefix := sd.Messages[:last+1]
		q, err := t.tmpls["cot"].Render(CoTData{Prompt: sd.Messages[last].Content})
		if err != nil {
			return out, rej, err
		}
		send := append(append([]datasets.Message(nil), prefix[:last]...), user(q))
		resp, err := c.Chat(ctx, t.cfg.Answer.request(send, 0, 4096))
		if err != nil {
			p := t.prov(c, "", nil, "cot")
			p.Seed, p.Parent = sd.ID, parentMeta(sd.Meta)
			r, err := t.callError(err, p, prefix...)
			if err != nil {
				return out, rej, err
			}
			rej = append(rej, r)
			continue
		}
		msgs := append(append([]datasets.Message(nil), prefix...), assistant(nonEmpty(strings.TrimSpace(resp.Text))))
		p := t.prov(c, resp.Model, []string{resp.Key}, "cot")
		p.Seed, p.Parent = sd.ID, parentMeta(sd.Meta)
		fail := func(reason, detail string) {
			rej = append(rej, t.reject(reason, detail, p, msgs...))
		}
		if resp.FinishReason == "length" {
			fail(ReasonTruncated, "finish_reason length")
			continue
		}
		reasoning, answer, ok := SplitReasoning(resp.Text)
		if !ok {
			fail(ReasonFormat, "no <reasoning> and <answer>, nor a final answer line")
			continue
		}
		if reason, detail := checkAnswer(answer, "", t.cfg.MinAnswerWords); reason != "" {
			fail(reason, detail)
			continue
		}
		msgs[len(msgs)-1].Content = FormatCoT(t.cfg.Style, reasoning, answer)
		out = append(out, makeSample(msgs, sd.Source, sd.License, p))
	}
	return out, rej, nil
}

// FormatCoT writes reasoning and answer as one assistant turn in a
// style: StyleThink "<think>\nREASONING\n</think>\n\nANSWER", or
// StyleFinalAnswer "REASONING\n\nFinal answer: ANSWER".
func FormatCoT(style, reasoning, answer string) string {
	reasoning, answer = strings.TrimSpace(reasoning), strings.TrimSpace(answer)
	if style == StyleFinalAnswer {
		return reasoning + "\n\nFinal answer: " + answer
	}
	return "<think>\n" + reasoning + "\n</think>\n\n" + answer
}

var (
	reasoningRE   = regexp.MustCompile(`(?is)<(reasoning|think)>(.*?)</(?:reasoning|think)>`)
	answerOpenRE  = regexp.MustCompile(`(?i)<answer>`)
	answerCloseRE = regexp.MustCompile(`(?i)</answer>`)
	finalRE       = regexp.MustCompile(`(?im)^[ \t]*(?:\*\*|__|#+[ \t]*)?final answer(?:\*\*|__)?[ \t]*:?[ \t]*(?:\*\*|__)?[ \t]*`)
)

// SplitReasoning splits a chain-of-thought text into its reasoning and
// its final answer. It reads the tags the cot template asks for
// (<reasoning>…</reasoning> or <think>…</think>, then <answer>…</answer>,
// the closing tag optional at the end), a "Final answer:" line (the last
// one, as StyleFinalAnswer writes it), and StyleThink's output (the text
// after </think>). ok is false when reasoning or answer is empty.
func SplitReasoning(text string) (reasoning, answer string, ok bool) {
	if loc := answerOpenRE.FindAllStringIndex(text, -1); loc != nil {
		at := loc[len(loc)-1]
		answer = text[at[1]:]
		if c := answerCloseRE.FindStringIndex(answer); c != nil {
			answer = answer[:c[0]]
		}
		before := text[:at[0]]
		if m := reasoningRE.FindStringSubmatch(before); m != nil {
			reasoning = m[2]
		} else {
			reasoning = strings.NewReplacer("<reasoning>", "", "</reasoning>", "").Replace(before)
		}
	} else if locs := finalRE.FindAllStringIndex(text, -1); locs != nil {
		at := locs[len(locs)-1]
		reasoning, answer = text[:at[0]], text[at[1]:]
		if m := reasoningRE.FindStringSubmatch(reasoning); m != nil {
			reasoning = m[2]
		}
	} else if m := reasoningRE.FindStringSubmatchIndex(text); m != nil && strings.EqualFold(text[m[2]:m[3]], "think") {
		reasoning, answer = text[m[4]:m[5]], text[m[1]:]
	}
	reasoning, answer = strings.TrimSpace(reasoning), strings.TrimSpace(answer)
	return reasoning, answer, reasoning != "" && answer != ""
}
