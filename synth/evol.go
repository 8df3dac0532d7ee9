package synth

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"slices"
	"strings"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
)

// Evol-Instruct operations (Xu et al. 2023, "WizardLM"): four kinds of
// in-depth evolution and one in-breadth.
const (
	OpDeepen        = "deepen"             // ask about causes, trade-offs and implications
	OpAddConstraint = "add_constraints"    // add a constraint or requirement
	OpConcretize    = "concretize"         // replace general concepts with specific ones
	OpReasoning     = "increase_reasoning" // require explicit multi-step reasoning
	OpBroaden       = "broaden"            // a new instruction on a rarer topic of the same domain
)

// EvolOperations lists the operations, in order.
var EvolOperations = []string{OpDeepen, OpAddConstraint, OpConcretize, OpReasoning, OpBroaden}

// EvolConfig configures EvolInstruct; zero values mean the defaults.
type EvolConfig struct {
	// Operations to use; default all of EvolOperations.
	Operations []string `yaml:"operations,omitempty" json:"operations,omitempty"`
	// PerSample is how many operations each sample goes through (each a
	// separate evolution of the original); default 1. The operations are
	// picked by a hash of the sample's ID: deterministic, and spread
	// evenly over a dataset.
	PerSample int `yaml:"per_sample,omitempty" json:"per_sample,omitempty"`
	// CopyThreshold: an evolved instruction whose ROUGE-L F against the
	// original reaches it is a failed evolution; default 0.9.
	CopyThreshold float64 `yaml:"copy_threshold,omitempty" json:"copy_threshold,omitempty"`
	// MinAnswerWords: shorter answers are rejected; default 3.
	MinAnswerWords int `yaml:"min_answer_words,omitempty" json:"min_answer_words,omitempty"`
	// SorryWords: an answer saying "sorry" with fewer words than this is
	// a failed evolution, as in WizardLM's elimination; default 80.
	SorryWords int `yaml:"sorry_words,omitempty" json:"sorry_words,omitempty"`
	// Rewrite is the rewriting call (default temperature 0.7,
	// max_tokens 1024); Answer the answering call (temperature 0,
	// max_tokens 2048).
	Rewrite Sampling `yaml:"rewrite,omitempty" json:"rewrite"`
	Answer  Sampling `yaml:"answer,omitempty" json:"answer"`
	// Prompts point templates at files: evol_deepen,
	// evol_add_constraints, evol_concretize, evol_increase_reasoning,
	// evol_broaden (data: AnswerData, the instruction to rewrite) and
	// answer (data: AnswerData).
	Prompts map[string]string `yaml:"prompts,omitempty" json:"prompts,omitempty"`
}

// EvolInstruct is the Evol-Instruct task: each sample's instruction is
// rewritten by one or more evolution operations and each rewrite is
// answered; failed evolutions are eliminated (ReasonCopy,
// ReasonLeak, ReasonRefusal, ReasonTooShort, ReasonTruncated).
type EvolInstruct struct {
	gen
	cfg EvolConfig
}

// NewEvolInstruct checks cfg, fills in its defaults and loads its
// templates.
func NewEvolInstruct(cfg EvolConfig) (*EvolInstruct, error) {
	if len(cfg.Operations) == 0 {
		cfg.Operations = EvolOperations
	}
	if cfg.PerSample == 0 {
		cfg.PerSample = 1
	}
	if cfg.CopyThreshold == 0 {
		cfg.CopyThreshold = 0.9
	}
	if cfg.MinAnswerWords == 0 {
		cfg.MinAnswerWords = 3
	}
	if cfg.SorryWords == 0 {
		cfg.SorryWords = 80
	}
	var errs []error
	seen := map[string]bool{}
	for _, op := range cfg.Operations {
		if !slices.Contains(EvolOperations, op) {
			errs = append(errs, fmt.Errorf("operations: %q is not one of %s", op, strings.Join(EvolOperations, ", ")))
		}
		if seen[op] {
			errs = append(errs, fmt.Errorf("operations: %q twice", op))
		}
		seen[op] = true
	}
	if cfg.PerSample < 1 || cfg.PerSample > len(cfg.Operations) {
		errs = append(errs, fmt.Errorf("per_sample %d is not between 1 and the %d operations", cfg.PerSample, len(cfg.Operations)))
	}
	if cfg.CopyThreshold < 0 || cfg.CopyThreshold > 1 {
		errs = append(errs, fmt.Errorf("copy_threshold %v is not in (0, 1]", cfg.CopyThreshold))
	}
	errs = append(errs, cfg.Rewrite.validate("rewrite"), cfg.Answer.validate("answer"))
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("synth: evol_instruct: %w", err)
	}
	probes := map[string]probe{"answer": {AnswerData{Instruction: "Probe instruction."}, "Probe instruction.", "Instruction"}}
	for _, op := range cfg.Operations {
		probes["evol_"+op] = probe{AnswerData{Instruction: "Probe instruction."}, "Probe instruction.", "Instruction"}
	}
	t, err := loadTemplates("evol_instruct", cfg.Prompts, probes)
	if err != nil {
		return nil, err
	}
	return &EvolInstruct{gen: gen{name: "evol_instruct", tmpls: t}, cfg: cfg}, nil
}

// Name returns "evol_instruct".
func (e *EvolInstruct) Name() string { return e.name }

// Operations returns the operations a sample goes through.
func (e *EvolInstruct) Operations(sampleID string) []string {
	h := fnv.New64a()
	h.Write([]byte(sampleID))
	n := len(e.cfg.Operations)
	start := int(h.Sum64() % uint64(n))
	ops := make([]string, e.cfg.PerSample)
	for i := range ops {
		ops[i] = e.cfg.Operations[(start+i)%n]
	}
	return ops
}

// Generate evolves each of in.Samples (those with exactly one user turn;
// others are rejected with ReasonUnusable). The new samples keep the
// original's system turns and license.
func (e *EvolInstruct) Generate(ctx context.Context, c *llm.Client, in Input) ([]datasets.Sample, []datasets.Rejected, error) {
	var out []datasets.Sample
	var rej []datasets.Rejected
	for _, sd := range in.Samples {
		system, inst, ok := instruction(sd)
		if !ok {
			rej = append(rej, datasets.Rejected{Stage: e.name, Reason: ReasonUnusable, Detail: "not exactly one user turn", Sample: sd})
			continue
		}
		for _, op := range e.Operations(sd.ID) {
			s, r, err := e.evolve(ctx, c, sd, system, inst, op)
			if err != nil {
				return out, rej, err
			}
			if r != nil {
				rej = append(rej, *r)
			} else {
				out = append(out, s)
			}
		}
	}
	return out, rej, nil
}

var (
	rewritePrefixRE = regexp.MustCompile(`(?i)^\s*(?:\*\*|__)?#?\s*(?:the\s+)?(?:rewritten|created|new|evolved)\s+(?:prompt|instruction)\s*#?(?:\*\*|__)?\s*:?(?:\*\*|__)?\s*`)
	leakRE          = regexp.MustCompile(`(?i)#\s*(?:given|rewritten|created)\s+prompt\s*#|\b(?:given|rewritten|created|original)\s+prompt\b`)
)

func (e *EvolInstruct) evolve(ctx context.Context, c *llm.Client, sd datasets.Sample, system []datasets.Message, inst, op string) (datasets.Sample, *datasets.Rejected, error) {
	tname := "evol_" + op
	prompt, err := e.tmpls[tname].Render(AnswerData{Instruction: inst})
	if err != nil {
		return datasets.Sample{}, nil, err
	}
	var keys []string
	model := ""
	pv := func() Provenance {
		used := []string{tname}
		if len(keys) > 1 {
			used = append(used, "answer")
		}
		p := e.prov(c, model, keys, used...)
		p.Seed, p.Operation, p.Parent = sd.ID, op, parentMeta(sd.Meta)
		return p
	}
	fail := func(reason, detail string, msgs ...datasets.Message) (datasets.Sample, *datasets.Rejected, error) {
		r := e.reject(reason, op+": "+detail, pv(), msgs...)
		return datasets.Sample{}, &r, nil
	}
	called := func(err error, msgs ...datasets.Message) (datasets.Sample, *datasets.Rejected, error) {
		r, err := e.callError(err, pv(), msgs...)
		if err != nil {
			return datasets.Sample{}, nil, err
		}
		r.Detail = op + ": " + r.Detail
		return datasets.Sample{}, &r, nil
	}
	rw, err := c.Chat(ctx, e.cfg.Rewrite.request([]datasets.Message{user(prompt)}, 0.7, 1024))
	if err != nil {
		return called(err, user(inst))
	}
	keys, model = append(keys, rw.Key), rw.Model
	evolved := cleanRewrite(rw.Text)
	switch {
	case rw.FinishReason == "length":
		return fail(ReasonTruncated, "rewrite cut off by the token limit", user(nonEmpty(evolved)))
	case evolved == "":
		return fail(ReasonTooShort, "empty rewrite", user(nonEmpty(evolved)))
	case judges.IsRefusal(evolved):
		return fail(ReasonRefusal, "the rewrite is a refusal", user(evolved))
	case leakRE.MatchString(evolved):
		return fail(ReasonLeak, "the rewrite mentions the rewriting", user(evolved))
	}
	if f := RougeL(evolved, inst); normalize(evolved) == normalize(inst) || f >= e.cfg.CopyThreshold {
		return fail(ReasonCopy, fmt.Sprintf("rouge-l %.3f with the original", f), user(evolved))
	}

	q, err := e.tmpls["answer"].Render(AnswerData{Instruction: evolved})
	if err != nil {
		return datasets.Sample{}, nil, err
	}
	ans, err := c.Chat(ctx, e.cfg.Answer.request(append(append([]datasets.Message(nil), system...), user(q)), 0, 2048))
	if err != nil {
		return called(err, user(evolved))
	}
	keys, model = append(keys, ans.Key), ans.Model
	text := strings.TrimSpace(ans.Text)
	msgs := append(append([]datasets.Message(nil), system...), user(evolved), assistant(nonEmpty(text)))
	if reason, detail := checkAnswer(text, ans.FinishReason, e.cfg.MinAnswerWords); reason != "" {
		return fail(reason, detail, msgs...)
	}
	if w := RougeTokens(text); slices.Contains(w, "sorry") && len(w) < e.cfg.SorryWords {
		return fail(ReasonRefusal, fmt.Sprintf(`short answer (%d words) saying "sorry"`, len(w)), msgs...)
	}
	return makeSample(msgs, sd.Source, sd.License, pv()), nil, nil
}

// cleanRewrite strips what models wrap a rewritten prompt in: a
// "Rewritten Prompt:" label, enclosing quotes or bold.
func cleanRewrite(s string) string {
	s = judges.StripFence(s)
	for {
		before := s
		s = strings.TrimSpace(rewritePrefixRE.ReplaceAllString(s, ""))
		s = cleanItem(s)
		if s == before {
			return s
		}
	}
}

// normalize lower-cases text and joins its ROUGE tokens.
func normalize(s string) string { return strings.Join(RougeTokens(s), " ") }
