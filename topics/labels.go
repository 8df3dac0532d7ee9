package topics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// Keyword is a topic word and its class-based tf-idf score.
type Keyword struct {
	Word  string  `json:"word"`
	Score float64 `json:"score"`
}

// WordCounts counts the words of one class (topic): lower-cased runs of
// letters and digits of two or more runes, stop words and numbers left
// out. Counts of one class from several workers add up (Merge), so they
// can be gathered by a combine.
type WordCounts map[string]int

// Add counts the words of text.
func (w WordCounts) Add(text string) {
	eachWord(text, nil, func(b []byte) {
		if isLabelWord(b) {
			w[string(b)]++
		}
	})
}

// Merge adds o's counts.
func (w WordCounts) Merge(o WordCounts) {
	for k, v := range o {
		w[k] += v
	}
}

// ClassTFIDF scores the words of each class as BERTopic's class-based
// tf-idf does: score(t, c) = tf(t, c) · log(1 + A/f(t)), where tf(t, c)
// is t's count in class c over the total count of words in c, f(t) is
// t's count over all classes and A the average number of words per
// class. It returns each class's top n words (score descending, then
// word ascending), among words seen at least minCount times in the
// class when there are n such words, else among all its words.
func ClassTFIDF(classes []WordCounts, n, minCount int) [][]Keyword {
	freq := map[string]int{}
	var all float64
	for _, wc := range classes {
		for w, c := range wc {
			freq[w] += c
			all += float64(c)
		}
	}
	if len(classes) == 0 {
		return nil
	}
	avg := all / float64(len(classes))
	out := make([][]Keyword, len(classes))
	for ci, wc := range classes {
		var size float64
		for _, c := range wc {
			size += float64(c)
		}
		var kws, rare []Keyword
		for w, c := range wc {
			k := Keyword{Word: w, Score: float64(c) / size * math.Log(1+avg/float64(freq[w]))}
			if c >= minCount {
				kws = append(kws, k)
			} else {
				rare = append(rare, k)
			}
		}
		byScore := func(a, b Keyword) int {
			if a.Score != b.Score {
				if a.Score > b.Score {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Word, b.Word)
		}
		slices.SortFunc(kws, byScore)
		if len(kws) < n {
			slices.SortFunc(rare, byScore)
			kws = append(kws, rare...)
		}
		out[ci] = kws[:min(n, len(kws))]
	}
	return out
}

// LabelOf joins the first n keywords with " · ", e.g. "recipe · chicken ·
// bake".
func LabelOf(kws []Keyword, n int) string {
	words := make([]string, 0, n)
	for _, k := range kws[:min(n, len(kws))] {
		words = append(words, k.Word)
	}
	return strings.Join(words, " · ")
}

// Namer names a topic from its keywords and a few representative texts
// (those closest to its centroid). A name is a few words, for people.
type Namer interface {
	NameTopic(ctx context.Context, keywords []string, examples []string) (string, error)
}

// LLMNamer names topics with a chat model through the shared client
// (its cache, retries, limits and budget apply).
type LLMNamer struct {
	Client *llm.Client
	// MaxExampleBytes cuts each example (default 600); MaxTokens caps the
	// answer (default 16).
	MaxExampleBytes int
	MaxTokens       int
}

// NameTopic asks for a name of two to five words at temperature 0 and
// returns the answer's first line without quotes or a final period, cut
// to 60 bytes. An empty answer is an error.
func (n LLMNamer) NameTopic(ctx context.Context, keywords []string, examples []string) (string, error) {
	if n.Client == nil {
		return "", fmt.Errorf("topic namer: no client")
	}
	maxEx, maxTok := n.MaxExampleBytes, n.MaxTokens
	if maxEx <= 0 {
		maxEx = 600
	}
	if maxTok <= 0 {
		maxTok = 16
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Keywords: %s\n\nExamples:\n", strings.Join(keywords, ", "))
	for i, e := range examples {
		fmt.Fprintf(&b, "%d. %s\n", i+1, strings.ReplaceAll(truncate(e, maxEx), "\n", " "))
	}
	b.WriteString("\nName this topic.")
	req := llm.Request{
		Messages: []datasets.Message{
			{Role: datasets.RoleSystem, Content: "You name the topics of an instruction dataset. Given a topic's keywords and example prompts, answer with a short name of two to five words and nothing else."},
			{Role: datasets.RoleUser, Content: b.String()},
		},
		Temperature: llm.Float(0),
		MaxTokens:   maxTok,
	}
	r, err := n.Client.Chat(ctx, req)
	if err != nil {
		return "", fmt.Errorf("topic namer: %w", err)
	}
	name := cleanName(r.Text)
	if name == "" {
		return "", fmt.Errorf("topic namer: %s gave an empty name", n.Client.Endpoint().Name)
	}
	return name, nil
}

// cleanName keeps an answer's first non-empty line, without surrounding
// quotes, a "Name:" prefix or a final period, cut to 60 bytes.
func cleanName(s string) string {
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if i := strings.Index(line, ":"); i >= 0 && strings.EqualFold(strings.TrimSpace(line[:i]), "name") {
			line = strings.TrimSpace(line[i+1:])
		}
		// A period may close the quotes or sit inside them.
		line = strings.TrimRight(line, ". ")
		line = strings.Trim(line, "\"'`*“”")
		line = strings.TrimRight(line, ". ")
		line = strings.TrimSpace(truncate(line, 60))
		if !utf8.ValidString(line) {
			return ""
		}
		return line
	}
	return ""
}
