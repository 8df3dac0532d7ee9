package synth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
)

// QAConfig configures DocQA; zero values mean the defaults.
type QAConfig struct {
	// PairsPerChunk is how many pairs the prompt asks for (up to);
	// default 3.
	PairsPerChunk int `yaml:"pairs_per_chunk,omitempty" json:"pairs_per_chunk,omitempty"`
	// MinChunkChars: shorter chunks are skipped (ReasonShortChunk);
	// default 200.
	MinChunkChars int `yaml:"min_chunk_chars,omitempty" json:"min_chunk_chars,omitempty"`
	// AllowMissingQuote keeps pairs without a quote (by default a pair
	// must quote its evidence, and the quote must be in the chunk).
	AllowMissingQuote bool `yaml:"allow_missing_quote,omitempty" json:"allow_missing_quote,omitempty"`
	// IncludeContext puts the chunk in the sample's user turn ("Context
	// (doc > heading):\n…\n\nQuestion: …"), for grounded (RAG-style)
	// training; by default the user turn is the question alone.
	IncludeContext bool `yaml:"include_context,omitempty" json:"include_context,omitempty"`
	// MinAnswerWords: shorter answers are rejected; default 1.
	MinAnswerWords int `yaml:"min_answer_words,omitempty" json:"min_answer_words,omitempty"`
	// Generate is the call (default temperature 0.7, max_tokens 2048).
	Generate Sampling `yaml:"generate,omitempty" json:"generate"`
	// Structured: auto (default), schema or prompt (see
	// judges.Structured).
	Structured judges.Structured `yaml:"structured,omitempty" json:"structured,omitempty"`
	// Prompts point the doc_qa template (data: QAData) at a file.
	Prompts map[string]string `yaml:"prompts,omitempty" json:"prompts,omitempty"`
}

// QAData is the data of the doc_qa template.
type QAData struct {
	// Doc, Heading, ChunkID and Text are the chunk's (Chunk.Doc,
	// Chunk.Heading, Chunk.ID, Chunk.Text).
	Doc, Heading, ChunkID, Text string
	// Count is how many pairs to write (up to).
	Count int
	// Format describes the JSON answer (quoting ChunkID).
	Format string
}

// DocQA generates grounded question-and-answer pairs from document
// chunks. The model answers in JSON (a response_format schema where the
// server supports it, strict parsing, one repair retry):
//
//	{"pairs": [{"question", "answer", "chunk_id", "quote"}]}
//
// and every pair must cite the chunk it was asked about (chunk_id equal
// to the chunk's ID, else ReasonCitation) and quote evidence found in it
// (ReasonQuote; case, white space and typographic quotes aside, "…" or
// "..." eliding text between parts found in order).
type DocQA struct {
	gen
	cfg QAConfig
}

// NewDocQA checks cfg, fills in its defaults and loads its template.
func NewDocQA(cfg QAConfig) (*DocQA, error) {
	if cfg.PairsPerChunk == 0 {
		cfg.PairsPerChunk = 3
	}
	if cfg.MinChunkChars == 0 {
		cfg.MinChunkChars = 200
	}
	if cfg.MinAnswerWords == 0 {
		cfg.MinAnswerWords = 1
	}
	var errs []error
	if cfg.PairsPerChunk < 1 || cfg.PairsPerChunk > 50 {
		errs = append(errs, fmt.Errorf("pairs_per_chunk %d is not in [1, 50]", cfg.PairsPerChunk))
	}
	errs = append(errs, cfg.Generate.validate("generate"), cfg.Structured.Validate())
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("synth: doc_qa: %w", err)
	}
	t, err := loadTemplates("doc_qa", cfg.Prompts, map[string]probe{
		"doc_qa": {QAData{Doc: "d.md", ChunkID: "0123", Text: "Probe chunk text.", Count: 3, Format: qaFormat("0123")}, "Probe chunk text.", "Text"},
	})
	if err != nil {
		return nil, err
	}
	return &DocQA{gen: gen{name: "doc_qa", tmpls: t}, cfg: cfg}, nil
}

// Name returns "doc_qa".
func (d *DocQA) Name() string { return d.name }

func qaFormat(id string) string {
	return `Answer with a single JSON object and nothing else:
{"pairs": [{"question": "<question>", "answer": "<answer>", "chunk_id": "` + id + `", "quote": "<evidence copied from the excerpt>"}]}`
}

var qaSchema = json.RawMessage(`{"type":"object","properties":{"pairs":{"type":"array","items":{"type":"object","properties":{"question":{"type":"string"},"answer":{"type":"string"},"chunk_id":{"type":"string"},"quote":{"type":"string"}},"required":["question","answer","chunk_id","quote"],"additionalProperties":false}}},"required":["pairs"],"additionalProperties":false}`)

type qaPair struct {
	Question string `json:"question"`
	Answer   string `json:"answer"`
	ChunkID  string `json:"chunk_id"`
	Quote    string `json:"quote"`
}

// parseQA reads the answer strictly: an object with a "pairs" array of
// objects with only the four string fields.
func parseQA(text string) ([]qaPair, error) {
	var a struct {
		Pairs *[]qaPair `json:"pairs"`
	}
	if err := judges.DecodeStrict(text, &a); err != nil {
		return nil, err
	}
	if a.Pairs == nil {
		return nil, errors.New(`the JSON has no "pairs" array`)
	}
	return *a.Pairs, nil
}

// Generate asks for pairs about each of in.Chunks.
func (d *DocQA) Generate(ctx context.Context, c *llm.Client, in Input) ([]datasets.Sample, []datasets.Rejected, error) {
	var out []datasets.Sample
	var rej []datasets.Rejected
	for _, ch := range in.Chunks {
		if len(strings.TrimSpace(ch.Text)) < d.cfg.MinChunkChars {
			rej = append(rej, d.chunkReject(c, ch, ReasonShortChunk, fmt.Sprintf("%d chars < %d", len(strings.TrimSpace(ch.Text)), d.cfg.MinChunkChars)))
			continue
		}
		s, r, err := d.chunk(ctx, c, ch)
		out = append(out, s...)
		rej = append(rej, r...)
		if err != nil {
			return out, rej, err
		}
	}
	return out, rej, nil
}

// chunkProv is the provenance of what comes from chunk ch.
func (d *DocQA) chunkProv(c *llm.Client, ch Chunk, model string, keys []string) Provenance {
	p := d.prov(c, model, keys, "doc_qa")
	p.Chunk, p.Doc, p.Heading = ch.ID, ch.Doc, ch.Heading
	return p
}

func (d *DocQA) chunkReject(c *llm.Client, ch Chunk, reason, detail string) datasets.Rejected {
	r := d.reject(reason, detail, d.chunkProv(c, ch, "", nil), user(ch.Text))
	r.Sample.Source = datasets.Source{Dataset: d.name, File: ch.Doc, Index: int64(ch.Offset)}
	return r
}

func (d *DocQA) chunk(ctx context.Context, c *llm.Client, ch Chunk) ([]datasets.Sample, []datasets.Rejected, error) {
	prompt, err := d.tmpls["doc_qa"].Render(QAData{Doc: ch.Doc, Heading: ch.Heading, ChunkID: ch.ID, Text: ch.Text,
		Count: d.cfg.PairsPerChunk, Format: qaFormat(ch.ID)})
	if err != nil {
		return nil, nil, err
	}
	var pairs []qaPair
	req := d.cfg.Generate.request([]datasets.Message{user(prompt)}, 0.7, 2048)
	req.JSONSchema = &llm.JSONSchema{Name: "doc_qa_pairs", Schema: qaSchema, Strict: true}
	res, err := judges.CallJSON(ctx, c, judges.JSONCall{
		Request:    req,
		Structured: d.cfg.Structured,
		Format:     qaFormat(ch.ID),
		Parse: func(text string) error {
			var err error
			pairs, err = parseQA(text)
			return err
		},
	})
	if err != nil {
		if judges.StopsStage(err) {
			return nil, nil, err
		}
		reason := ReasonLLMError
		var pe *judges.ParseError
		if errors.As(err, &pe) {
			reason = ReasonParse
		}
		r := d.chunkReject(c, ch, reason, cut(err.Error(), 300))
		// The calls that were answered (the unreadable one and its
		// repair) stay in the provenance.
		r.Sample.Meta = d.chunkProv(c, ch, res.Model, res.Keys).JSON()
		if len(res.Raw) > 0 {
			r.Sample.Messages = append(r.Sample.Messages, assistant(nonEmpty(res.RawText())))
		}
		return nil, []datasets.Rejected{r}, nil
	}

	var out []datasets.Sample
	var rej []datasets.Rejected
	seen := map[string]bool{}
	for _, p := range pairs {
		q, a := strings.TrimSpace(p.Question), strings.TrimSpace(p.Answer)
		msgs := []datasets.Message{user(nonEmpty(q)), assistant(nonEmpty(a))}
		pv := d.chunkProv(c, ch, res.Model, res.Keys)
		pv.Quote = strings.TrimSpace(p.Quote)
		bad := func(reason, detail string) {
			r := d.reject(reason, detail, pv, msgs...)
			r.Sample.Source = datasets.Source{Dataset: d.name, File: ch.Doc, Index: int64(ch.Offset)}
			rej = append(rej, r)
		}
		switch {
		case q == "":
			bad(ReasonTooShort, "empty question")
			continue
		case strings.TrimSpace(p.ChunkID) != ch.ID:
			bad(ReasonCitation, fmt.Sprintf("cites %q, the chunk is %s", cut(p.ChunkID, 40), ch.ID))
			continue
		case strings.TrimSpace(p.Quote) == "" && !d.cfg.AllowMissingQuote:
			bad(ReasonQuote, "no quote")
			continue
		case strings.TrimSpace(p.Quote) != "" && !quoteIn(p.Quote, ch.Text):
			bad(ReasonQuote, fmt.Sprintf("quote %q is not in the chunk", cut(p.Quote, 80)))
			continue
		case seen[normalize(q)]:
			bad(ReasonNotNovel, "the chunk's question repeated")
			continue
		}
		if reason, detail := checkAnswer(a, "", d.cfg.MinAnswerWords); reason != "" {
			bad(reason, detail)
			continue
		}
		seen[normalize(q)] = true
		if d.cfg.IncludeContext {
			where := ch.Doc
			if ch.Heading != "" {
				where += " > " + ch.Heading
			}
			msgs[0].Content = fmt.Sprintf("Context (%s):\n%s\n\nQuestion: %s", where, ch.Text, q)
		}
		out = append(out, makeSample(msgs, datasets.Source{Dataset: d.name, File: ch.Doc, Index: int64(ch.Offset)}, "", pv))
	}
	return out, rej, nil
}

// quoteIn reports whether quote occurs in text, comparing lower-cased
// text with white space collapsed and typographic quotes, apostrophes and
// dashes read as ASCII; "…" or "..." in the quote may elide text, the
// parts then being found in order.
func quoteIn(quote, text string) bool {
	t := normQuote(text)
	q := strings.ReplaceAll(normQuote(quote), "...", "…")
	pos := 0
	found := false
	for _, part := range strings.Split(q, "…") {
		part = strings.Trim(part, ` "'`)
		if part == "" {
			continue
		}
		i := strings.Index(t[pos:], part)
		if i < 0 {
			return false
		}
		pos += i + len(part)
		found = true
	}
	return found
}

var quoteReplacer = strings.NewReplacer("“", `"`, "”", `"`, "„", `"`, "‘", "'", "’", "'", "–", "-", "—", "-", "\u00a0", " ")

func normQuote(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(quoteReplacer.Replace(s))), " ")
}
