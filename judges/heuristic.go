package judges

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode"

	"github.com/sieve-data/sieve/datasets"
)

// HeuristicJudge scores a response without a model, so a recipe runs with
// no endpoint. It is deterministic and cheap, and its score is in [1, 5]:
//
//	score = 1 + 4 · S · (RefusalPenalty if the response refuses, else 1)
//
// where S is the weighted mean, over the criteria that apply, of:
//
//   - length: ln(1+r)/ln(1+t) capped at 1, r being the response's words
//     and t the target, twice the prompt's words clamped to [30, 300]
//     (short answers to long prompts score low; beyond the target no
//     extra credit);
//   - structure: only when the last user turn asks for a list (list,
//     enumerate, steps, bullet points, outline, "5 ways", …) or for code
//     (code, function, program, script, implement, snippet, regex, SQL,
//     a language name): 1 for each request the response meets (two or
//     more list lines; a code fence, indented block or lines of code),
//     averaged over the requests;
//   - diversity: lexical diversity as the moving-average type/token
//     ratio over 50-word windows (the plain ratio below 50 words), mapped
//     from [0.3, 0.7] onto [0, 1]: repetitive text scores low;
//   - no_refusal: 0 when the response contains a refusal phrase
//     (RefusalPhrases), else 1.
//
// Verdict.Scores holds each criterion that applied mapped onto [1, 5].
// An empty response scores 1. The zero value uses the default weights
// (length 0.3, structure 0.2, diversity 0.2, no_refusal 0.3) and
// penalty (0.25).
type HeuristicJudge struct {
	// JudgeName defaults to "heuristic".
	JudgeName string `yaml:"name,omitempty" json:"name,omitempty"`
	// Weights of the criteria; all zero means the defaults.
	Weights HeuristicWeights `yaml:"weights,omitempty" json:"weights"`
	// RefusalPenalty multiplies S for a refusal; 0 means 0.25.
	RefusalPenalty float64 `yaml:"refusal_penalty,omitempty" json:"refusal_penalty,omitempty"`
	// RefusalPhrases replace RefusalPhrases when set (lower case).
	RefusalPhrases []string `yaml:"refusal_phrases,omitempty" json:"refusal_phrases,omitempty"`
}

// HeuristicWeights weigh the HeuristicJudge's criteria.
type HeuristicWeights struct {
	Length    float64 `yaml:"length" json:"length"`         // response length against the prompt's
	Structure float64 `yaml:"structure" json:"structure"`   // a requested list or code
	Diversity float64 `yaml:"diversity" json:"diversity"`   // lexical diversity
	NoRefusal float64 `yaml:"no_refusal" json:"no_refusal"` // no refusal phrase
}

// DefaultHeuristicWeights are the HeuristicJudge's default weights.
var DefaultHeuristicWeights = HeuristicWeights{Length: 0.3, Structure: 0.2, Diversity: 0.2, NoRefusal: 0.3}

// Name returns the judge's name.
func (h *HeuristicJudge) Name() string {
	if h.JudgeName == "" {
		return "heuristic"
	}
	return h.JudgeName
}

// Score rates the last assistant turn of s (ErrNoResponse when there is
// none). It never fails otherwise.
func (h *HeuristicJudge) Score(_ context.Context, s datasets.Sample) (Verdict, error) {
	prompt, resp, ok := splitLast(s.Messages)
	v := Verdict{Judge: h.Name(), Min: 1, Max: 5}
	if !ok {
		v.Err = ErrNoResponse.Error()
		return v, ErrNoResponse
	}
	return h.rate(prompt, resp, v), nil
}

// ScoreResponse rates response as an answer to prompt.
func (h *HeuristicJudge) ScoreResponse(prompt []datasets.Message, response string) Verdict {
	return h.rate(prompt, response, Verdict{Judge: h.Name(), Min: 1, Max: 5})
}

func (h *HeuristicJudge) rate(prompt []datasets.Message, resp string, v Verdict) Verdict {
	w := h.Weights
	if w == (HeuristicWeights{}) {
		w = DefaultHeuristicWeights
	}
	pen := h.RefusalPenalty
	if pen == 0 {
		pen = 0.25
	}
	phrases := h.RefusalPhrases
	if phrases == nil {
		phrases = RefusalPhrases
	}
	rw := words(resp)
	if len(rw) == 0 {
		v.Score = 1
		v.Scores = map[string]float64{"length": 1}
		v.Rationale = "empty response"
		return v
	}
	var pw int
	lastUser := ""
	for _, m := range prompt {
		if m.Role == datasets.RoleUser {
			pw += len(words(m.Content))
			lastUser = m.Content
		}
	}

	type crit struct {
		name string
		w, x float64
	}
	var cs []crit
	target := math.Min(300, math.Max(30, 2*float64(pw)))
	cs = append(cs, crit{"length", w.Length, math.Min(1, math.Log1p(float64(len(rw)))/math.Log1p(target))})
	if st, ok := structureScore(lastUser, resp); ok {
		cs = append(cs, crit{"structure", w.Structure, st})
	}
	cs = append(cs, crit{"diversity", w.Diversity, clamp01((mattr(rw, 50) - 0.3) / 0.4)})
	refused := refusalIn(resp, phrases)
	nr := 1.0
	if refused {
		nr = 0
	}
	cs = append(cs, crit{"no_refusal", w.NoRefusal, nr})

	var sum, tw float64
	v.Scores = make(map[string]float64, len(cs))
	var parts []string
	for _, c := range cs {
		v.Scores[c.name] = round3(1 + 4*c.x)
		parts = append(parts, fmt.Sprintf("%s %.2f", c.name, c.x))
		sum += c.w * c.x
		tw += c.w
	}
	s := 0.0
	if tw > 0 {
		s = sum / tw
	}
	if refused {
		s *= pen
	}
	v.Score = round3(1 + 4*s)
	v.Rationale = strings.Join(parts, ", ")
	if refused {
		v.Rationale += " (refusal)"
	}
	return v
}

var (
	asksListRE = regexp.MustCompile(`(?i)\b(list|lists|enumerate|itemi[sz]e|bullet(ed)?|bullet points|outline|step[- ]by[- ]step|steps)\b|\b(\d+|two|three|four|five|six|seven|eight|nine|ten) (ways|tips|reasons|examples|ideas|steps|things|items|points|benefits|advantages|questions)\b`)
	asksCodeRE = regexp.MustCompile(`(?i)\b(code|function|program|script|implement|implementation|snippet|regex|regular expression|sql|python|javascript|typescript|golang|java|rust|bash|c\+\+|html|css)\b`)
	listLineRE = regexp.MustCompile(`(?m)^[ \t]*([-*•+]|\d{1,3}[.)])[ \t]+\S`)
	codeLineRE = regexp.MustCompile(`(?m)^[ \t]*(def |func |function |class |return\b|import |from \S+ import |#include|public |private |const |let |var |SELECT |INSERT |UPDATE |CREATE |for \(|for \w+ in |if \(|while \(|print\(|console\.log)|[;{}][ \t]*$`)
	indentRE   = regexp.MustCompile(`(?m)^(    |\t)\S`)
)

// structureScore is the structure criterion; ok is false when the
// request asks for neither a list nor code.
func structureScore(request, resp string) (float64, bool) {
	var asked, met float64
	if asksListRE.MatchString(request) {
		asked++
		if len(listLineRE.FindAllStringIndex(resp, 2)) >= 2 {
			met++
		}
	}
	if asksCodeRE.MatchString(request) {
		asked++
		if strings.Contains(resp, "```") || len(indentRE.FindAllStringIndex(resp, 2)) >= 2 || len(codeLineRE.FindAllStringIndex(resp, 2)) >= 2 {
			met++
		}
	}
	if asked == 0 {
		return 0, false
	}
	return met / asked, true
}

// words splits text into lower-case runs of letters and digits.
func words(s string) []string {
	return strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
}

// mattr is the moving-average type/token ratio over windows of w tokens
// (the plain type/token ratio for fewer tokens).
func mattr(toks []string, w int) float64 {
	if len(toks) == 0 {
		return 0
	}
	if len(toks) <= w {
		seen := map[string]struct{}{}
		for _, t := range toks {
			seen[t] = struct{}{}
		}
		return float64(len(seen)) / float64(len(toks))
	}
	counts := map[string]int{}
	for _, t := range toks[:w] {
		counts[t]++
	}
	sum := float64(len(counts))
	for i := w; i < len(toks); i++ {
		counts[toks[i]]++
		out := toks[i-w]
		if counts[out]--; counts[out] == 0 {
			delete(counts, out)
		}
		sum += float64(len(counts))
	}
	windows := len(toks) - w + 1
	return sum / float64(windows) / float64(w)
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }
