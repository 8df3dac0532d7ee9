package topics

import (
	"context"
	"fmt"

	"github.com/sieve-data/sieve/llm"
)

// EmbedderSpec says which embedder a model's vectors come from, so a
// later run can check that it embeds the same way.
type EmbedderSpec struct {
	// Kind is "tfidf" (the built-in embedder, carried in the model),
	// "endpoint" (an embeddings API) or what a custom embedder reports.
	Kind string `json:"kind"`
	// Name and Model identify an endpoint (its recipe name and model).
	Name  string `json:"name,omitempty"`
	Model string `json:"model,omitempty"`
	Dim   int    `json:"dim"`
}

// Specer is implemented by embedders that describe themselves; Fit
// records the spec in the model. Others are recorded as kind "custom".
type Specer interface {
	Spec() EmbedderSpec
}

// Spec describes the built-in embedder.
func (t *TFIDF) Spec() EmbedderSpec { return EmbedderSpec{Kind: "tfidf", Dim: t.K} }

// EndpointEmbedder embeds through an OpenAI-compatible embeddings API
// with the shared llm client, in batches of BatchSize texts per request
// (each cached per text by the client). Empty texts are sent as a single
// space (the API refuses empty inputs).
type EndpointEmbedder struct {
	Client *llm.Client
	// Dims is the vector length: the model's own, or what Dimensions
	// asks for.
	Dims int
	// Dimensions, if set, is sent with each request (models that can
	// shorten their vectors).
	Dimensions int
	// BatchSize is the most texts per request (default 64).
	BatchSize int
}

// Dim is the vector length.
func (e *EndpointEmbedder) Dim() int { return e.Dims }

// Spec names the endpoint and its model.
func (e *EndpointEmbedder) Spec() EmbedderSpec {
	if e.Client == nil {
		return EmbedderSpec{Kind: "endpoint", Dim: e.Dims}
	}
	ep := e.Client.Endpoint()
	m := ep.Model
	if m == "" {
		m = ep.Deployment
	}
	return EmbedderSpec{Kind: "endpoint", Name: ep.Name, Model: m, Dim: e.Dims}
}

// Embed embeds the texts in order. A vector of another length than Dims
// is an error.
func (e *EndpointEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	if e.Client == nil {
		return nil, fmt.Errorf("endpoint embedder: no client")
	}
	bs := e.BatchSize
	if bs <= 0 {
		bs = 64
	}
	out := make([][]float32, 0, len(texts))
	in := make([]string, 0, bs)
	for lo := 0; lo < len(texts); lo += bs {
		in = in[:0]
		for _, t := range texts[lo:min(lo+bs, len(texts))] {
			if t == "" {
				t = " "
			}
			in = append(in, t)
		}
		r, err := e.Client.Embed(ctx, llm.EmbeddingRequest{Inputs: in, Dimensions: e.Dimensions})
		if err != nil {
			return nil, fmt.Errorf("endpoint embedder: texts %d to %d: %w", lo, lo+len(in)-1, err)
		}
		for i, v := range r.Vectors {
			if len(v) != e.Dims {
				return nil, fmt.Errorf("endpoint embedder: text %d has %d dimensions, want %d", lo+i, len(v), e.Dims)
			}
		}
		out = append(out, r.Vectors...)
	}
	return out, nil
}
