package judges

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/sieve-data/sieve/datasets"
)

//go:embed rubrics/*.yaml prompts/*.yaml
var files embed.FS

// Scale is an inclusive score range, written in YAML as {min: 1, max: 5}
// or as "1-5".
type Scale struct {
	Min float64 `yaml:"min" json:"min"` // lowest score
	Max float64 `yaml:"max" json:"max"` // highest score
}

// IsZero reports whether the scale is unset.
func (s Scale) IsZero() bool { return s.Min == 0 && s.Max == 0 }

// Contains reports whether x is in [Min, Max].
func (s Scale) Contains(x float64) bool { return x >= s.Min && x <= s.Max }

// String writes the scale as "1-5".
func (s Scale) String() string { return num(s.Min) + "-" + num(s.Max) }

// UnmarshalYAML accepts {min: 1, max: 5} and "1-5".
func (s *Scale) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		lo, hi, ok := strings.Cut(n.Value, "-")
		a, err1 := strconv.ParseFloat(strings.TrimSpace(lo), 64)
		b, err2 := strconv.ParseFloat(strings.TrimSpace(hi), 64)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("line %d: scale %q: want MIN-MAX (like 1-5) or {min: 1, max: 5}", n.Line, n.Value)
		}
		*s = Scale{Min: a, Max: b}
		return nil
	}
	type plain Scale
	var p plain
	if err := n.Decode(&p); err != nil {
		return err
	}
	*s = Scale(p)
	return nil
}

func (s Scale) validate() error {
	if math.IsNaN(s.Min) || math.IsNaN(s.Max) || math.IsInf(s.Min, 0) || math.IsInf(s.Max, 0) || s.Min >= s.Max {
		return fmt.Errorf("scale %s: min must be below max", s)
	}
	return nil
}

// Criterion is one rated dimension of a rubric.
type Criterion struct {
	// Name is the JSON key of the criterion's score: lower case letters,
	// digits and '_'.
	Name string `yaml:"name" json:"name"`
	// Description tells the judge what the criterion means and how its
	// scores read (it is quoted in the prompt).
	Description string `yaml:"description" json:"description"`
	// Scale defaults to the rubric's.
	Scale Scale `yaml:"scale,omitempty" json:"scale"`
	// Weight in the aggregated score; default 1.
	Weight float64 `yaml:"weight,omitempty" json:"weight"`
}

// Rubric is an editable scoring rubric: criteria, each with a scale and a
// weight, and the prompt that asks a model to rate a response on them.
// Rubrics are YAML files (see judges/rubrics/ for the defaults, embedded
// in the binary); LoadRubric reads one by name or path.
//
// The judge's prompt is a system turn (System) and a user turn rendered
// from Instruction, a text/template with the fields of TemplateData
// ({{.Prompt}}, {{.Response}}, {{.Criteria}}, {{.Format}}, …). When
// Instruction does not use {{.Format}}, the format description is
// appended to it. The answer is a JSON object
//
//	{"rationale": "…", "scores": {"criterion": number, …}}
//
// checked strictly by Parse. The aggregated score is the weighted mean
// of the criteria's scores, each mapped linearly onto the rubric's Scale.
type Rubric struct {
	Name        string      `yaml:"name" json:"name"`                                   // letters, digits, '_' and '-'
	Description string      `yaml:"description,omitempty" json:"description,omitempty"` // what the rubric measures
	Scale       Scale       `yaml:"scale,omitempty" json:"scale"`                       // of the aggregated score; default the criteria's common scale
	Criteria    []Criterion `yaml:"criteria" json:"criteria"`                           // at least one
	System      string      `yaml:"system,omitempty" json:"system,omitempty"`           // the system turn, if any
	Instruction string      `yaml:"instruction" json:"instruction"`                     // the user turn's template
	// Repair overrides DefaultRepairPrompt (data: RepairData).
	Repair string `yaml:"repair,omitempty" json:"repair,omitempty"`

	// Source is where the rubric was read ("embedded:rubrics/NAME.yaml"
	// or a path); Hash is the hex SHA-256 of the file's bytes.
	Source string `yaml:"-" json:"source"`
	Hash   string `yaml:"-" json:"sha256"`

	tmpl   *template.Template
	repair *template.Template
	schema json.RawMessage
	format string
}

// TemplateData is the data of a rubric's Instruction template.
type TemplateData struct {
	// Prompt is the conversation before the response: the user's text
	// alone for a single user turn, otherwise every turn labelled
	// "[System]", "[User]", "[Assistant]".
	Prompt string
	// Response is the assistant turn being rated.
	Response string
	// Criteria lists the criteria, one "- name (min-max): description"
	// line each.
	Criteria string
	// Format describes the JSON answer.
	Format string
	// Rubric and Description are the rubric's.
	Rubric      string // the rubric's name
	Description string // the rubric's description
}

var (
	criterionRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	rubricRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]*$`)
)

// Rubrics lists the names of the embedded rubrics.
func Rubrics() []string {
	ents, _ := fs.ReadDir(files, "rubrics")
	var out []string
	for _, e := range ents {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	return out
}

// LoadRubric reads a rubric: ref is the name of an embedded rubric
// (helpfulness, correctness, complexity, alpagasus; see Rubrics) or the
// path of a YAML file.
func LoadRubric(ref string) (*Rubric, error) {
	if isName(ref) {
		b, err := files.ReadFile("rubrics/" + ref + ".yaml")
		if err != nil {
			return nil, fmt.Errorf("rubric %q: no such embedded rubric (have %s); give a file path for your own", ref, strings.Join(Rubrics(), ", "))
		}
		return ParseRubric(b, "embedded:rubrics/"+ref+".yaml")
	}
	b, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("rubric: %w", err)
	}
	return ParseRubric(b, ref)
}

// isName reports whether ref names an embedded file rather than a path.
func isName(ref string) bool {
	return ref != "" && !strings.ContainsAny(ref, `/\`) && path.Ext(ref) == ""
}

// ParseRubric reads a rubric from YAML (unknown keys are errors) and
// checks it: a name, at least one criterion with a unique name, valid
// scales, non-negative weights, and an Instruction template that uses
// {{.Response}} and renders. source names the file in errors.
func ParseRubric(data []byte, source string) (*Rubric, error) {
	var r Rubric
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("rubric %s: %w", source, err)
	}
	sum := sha256.Sum256(data)
	r.Source, r.Hash = source, hex.EncodeToString(sum[:])
	if err := r.init(); err != nil {
		return nil, fmt.Errorf("rubric %s: %w", source, err)
	}
	return &r, nil
}

func (r *Rubric) init() error {
	if !rubricRE.MatchString(r.Name) {
		return errors.New("name: required; letters, digits, '_' and '-'")
	}
	if len(r.Criteria) == 0 {
		return errors.New("criteria: at least one is required")
	}
	seen := map[string]bool{}
	for i := range r.Criteria {
		c := &r.Criteria[i]
		if !criterionRE.MatchString(c.Name) {
			return fmt.Errorf("criteria[%d].name %q: use lower case letters, digits and '_'", i, c.Name)
		}
		if seen[c.Name] {
			return fmt.Errorf("criteria[%d].name %q: duplicate", i, c.Name)
		}
		seen[c.Name] = true
		if c.Scale.IsZero() {
			c.Scale = r.Scale
		}
		if c.Scale.IsZero() {
			return fmt.Errorf("criteria[%d] (%s): scale: required (or set the rubric's scale)", i, c.Name)
		}
		if err := c.Scale.validate(); err != nil {
			return fmt.Errorf("criteria[%d] (%s): %w", i, c.Name, err)
		}
		if c.Weight < 0 || math.IsNaN(c.Weight) || math.IsInf(c.Weight, 0) {
			return fmt.Errorf("criteria[%d] (%s): weight must be a non-negative number", i, c.Name)
		}
		if c.Weight == 0 {
			c.Weight = 1
		}
	}
	if r.Scale.IsZero() {
		r.Scale = r.Criteria[0].Scale
		for _, c := range r.Criteria[1:] {
			if c.Scale != r.Scale {
				return errors.New("scale: required when the criteria's scales differ")
			}
		}
	}
	if err := r.Scale.validate(); err != nil {
		return err
	}
	if strings.TrimSpace(r.Instruction) == "" {
		return errors.New("instruction: required")
	}
	if !strings.Contains(r.Instruction, ".Response") {
		return errors.New("instruction: must use {{.Response}}")
	}
	src := r.Instruction
	if !strings.Contains(src, ".Format") {
		src = strings.TrimRight(src, "\n") + "\n\n{{.Format}}\n"
	}
	t, err := template.New(r.Name).Option("missingkey=error").Parse(src)
	if err != nil {
		return fmt.Errorf("instruction: %w", err)
	}
	r.tmpl = t
	r.repair = defaultRepair
	if r.Repair != "" {
		if r.repair, err = template.New("repair").Option("missingkey=error").Parse(r.Repair); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		if err := r.repair.Execute(&bytes.Buffer{}, RepairData{Error: "x", Format: "y"}); err != nil {
			return fmt.Errorf("repair: %w", err)
		}
	}
	r.schema = r.buildSchema()
	r.format = r.buildFormat()
	if _, err := r.Messages([]datasets.Message{{Role: datasets.RoleUser, Content: "Say hi."}}, "Hi!"); err != nil {
		return fmt.Errorf("instruction: %w", err)
	}
	return nil
}

// Messages renders the judge's prompt for a response to prompt.
func (r *Rubric) Messages(prompt []datasets.Message, response string) ([]datasets.Message, error) {
	var b strings.Builder
	for _, c := range r.Criteria {
		fmt.Fprintf(&b, "- %s (%s): %s\n", c.Name, c.Scale, strings.TrimSpace(c.Description))
	}
	d := TemplateData{
		Prompt: FormatConversation(prompt), Response: response,
		Criteria: strings.TrimRight(b.String(), "\n"), Format: r.format,
		Rubric: r.Name, Description: strings.TrimSpace(r.Description),
	}
	var out bytes.Buffer
	if err := r.tmpl.Execute(&out, d); err != nil {
		return nil, err
	}
	var msgs []datasets.Message
	if s := strings.TrimSpace(r.System); s != "" {
		msgs = append(msgs, datasets.Message{Role: datasets.RoleSystem, Content: s})
	}
	return append(msgs, datasets.Message{Role: datasets.RoleUser, Content: out.String()}), nil
}

// FormatConversation renders turns for a judge's prompt: a single user
// turn as its text, anything else as labelled turns ("[User]\n…").
func FormatConversation(msgs []datasets.Message) string {
	if len(msgs) == 1 && msgs[0].Role == datasets.RoleUser {
		return msgs[0].Content
	}
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 {
			b.WriteString("\n\n")
		}
		role := m.Role
		if role != "" {
			role = strings.ToUpper(role[:1]) + role[1:]
		}
		fmt.Fprintf(&b, "[%s]\n%s", role, m.Content)
	}
	return b.String()
}

// Schema is the JSON schema of the answer: an object with a "rationale"
// string and a "scores" object holding every criterion as a number within
// its scale, nothing else (strict structured output accepts it).
func (r *Rubric) Schema() json.RawMessage { return r.schema }

// Format is the description of the answer quoted in prompts.
func (r *Rubric) Format() string { return r.format }

func (r *Rubric) buildSchema() json.RawMessage {
	var b strings.Builder
	b.WriteString(`{"type":"object","properties":{"rationale":{"type":"string"},"scores":{"type":"object","properties":{`)
	for i, c := range r.Criteria {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `%q:{"type":"number","minimum":%s,"maximum":%s}`, c.Name, num(c.Scale.Min), num(c.Scale.Max))
	}
	b.WriteString(`},"required":[`)
	for i, c := range r.Criteria {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", c.Name)
	}
	b.WriteString(`],"additionalProperties":false}},"required":["rationale","scores"],"additionalProperties":false}`)
	return json.RawMessage(b.String())
}

func (r *Rubric) buildFormat() string {
	var b strings.Builder
	b.WriteString(`Answer with a single JSON object and nothing else:` + "\n")
	b.WriteString(`{"rationale": "<a short justification>", "scores": {`)
	for i, c := range r.Criteria {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q: <number from %s to %s>", c.Name, num(c.Scale.Min), num(c.Scale.Max))
	}
	b.WriteString("}}")
	return b.String()
}

// SchemaName is the name sent with the rubric's JSON schema.
func (r *Rubric) SchemaName() string { return "rubric_" + strings.ReplaceAll(r.Name, "-", "_") }

// Parse reads a judge's answer strictly: exactly one JSON object (an
// enclosing code fence aside) with "scores" and optionally "rationale",
// no other keys; scores holding every criterion and no other, each a JSON
// number (not a string) within its scale.
func (r *Rubric) Parse(text string) (scores map[string]float64, rationale string, err error) {
	var a struct {
		Rationale *string                    `json:"rationale"`
		Scores    map[string]json.RawMessage `json:"scores"`
	}
	if err := DecodeStrict(text, &a); err != nil {
		return nil, "", err
	}
	if a.Scores == nil {
		return nil, "", errors.New(`the JSON has no "scores" object`)
	}
	scores = make(map[string]float64, len(r.Criteria))
	for _, c := range r.Criteria {
		raw, ok := a.Scores[c.Name]
		if !ok {
			return nil, "", fmt.Errorf("scores lacks %q", c.Name)
		}
		v, err := jsonNumber(raw)
		if err != nil {
			return nil, "", fmt.Errorf("score %q: %v", c.Name, err)
		}
		if !c.Scale.Contains(v) {
			return nil, "", fmt.Errorf("score %q is %s, outside %s", c.Name, num(v), c.Scale)
		}
		scores[c.Name] = v
	}
	if len(a.Scores) != len(r.Criteria) {
		var extra []string
		for k := range a.Scores {
			if _, ok := scores[k]; !ok {
				extra = append(extra, strconv.Quote(k))
			}
		}
		slices.Sort(extra)
		return nil, "", fmt.Errorf("scores has unknown criteria %s (want only %s)", strings.Join(extra, ", "), r.criteriaList())
	}
	if a.Rationale != nil {
		rationale = strings.TrimSpace(*a.Rationale)
	}
	return scores, rationale, nil
}

func (r *Rubric) criteriaList() string {
	names := make([]string, len(r.Criteria))
	for i, c := range r.Criteria {
		names[i] = strconv.Quote(c.Name)
	}
	return strings.Join(names, ", ")
}

// Aggregate is the weighted mean of the criteria's scores, each mapped
// linearly from its scale onto the rubric's.
func (r *Rubric) Aggregate(scores map[string]float64) float64 {
	var sum, w float64
	for _, c := range r.Criteria {
		n := (scores[c.Name] - c.Scale.Min) / (c.Scale.Max - c.Scale.Min)
		sum += c.Weight * n
		w += c.Weight
	}
	if w == 0 {
		return r.Scale.Min
	}
	return r.Scale.Min + (r.Scale.Max-r.Scale.Min)*sum/w
}

// jsonNumber reads a JSON number, refusing strings and other values.
func jsonNumber(raw json.RawMessage) (float64, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, fmt.Errorf("%s is not a number", head(s, 20))
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%s is not a number", head(s, 20))
	}
	return v, nil
}

func num(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
