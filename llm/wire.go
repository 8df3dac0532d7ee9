package llm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// go-openai builds the request body from ChatCompletionRequest, whose
// Temperature and TopP are float32 with omitempty: a temperature of 0 is
// silently dropped (and the server then samples at its default of 1), and
// other values travel as float32. go-openai has no hook to edit the body,
// but it sends every request through the HTTPDoer of its ClientConfig.
// wireDoer is that doer: for each request the client puts a wireState in
// the request's context, and wireDoer
//
//   - rewrites the JSON body so that every field in wireState.set is
//     present with exactly that value (temperature 0 included), and
//   - records the response status and headers (go-openai's errors keep
//     the status but not Retry-After).
//
// The rewrite decodes the body into a map of raw values, sets the keys and
// re-encodes it; nothing else in the body changes meaning.

type wireKey struct{}

// wireState is the per-attempt side channel between Client and wireDoer.
type wireState struct {
	set    map[string]json.RawMessage // fields forced into the body
	status int                        // response status, 0 if none
	header http.Header                // response headers
}

func withWire(ctx context.Context, st *wireState) context.Context {
	return context.WithValue(ctx, wireKey{}, st)
}

type wireDoer struct{ hc *http.Client }

func (d wireDoer) Do(req *http.Request) (*http.Response, error) {
	st, _ := req.Context().Value(wireKey{}).(*wireState)
	if st != nil && len(st.set) > 0 && req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("reading request body: %w", err)
		}
		body, err = patchJSON(body, st.set)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	resp, err := d.hc.Do(req)
	if st != nil && resp != nil {
		st.status = resp.StatusCode
		st.header = resp.Header.Clone()
	}
	return resp, err
}

// patchJSON sets top-level keys of a JSON object.
func patchJSON(body []byte, set map[string]json.RawMessage) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("request body is not a JSON object: %w", err)
	}
	for k, v := range set {
		m[k] = v
	}
	return json.Marshal(m)
}

// wireFields are the body fields the client forces for a request: the
// sampling parameters go-openai would drop or round.
func wireFields(r Request) map[string]json.RawMessage {
	set := map[string]json.RawMessage{}
	if r.Temperature != nil {
		set["temperature"] = mustJSON(*r.Temperature)
	}
	if r.TopP != nil {
		set["top_p"] = mustJSON(*r.TopP)
	}
	return set
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
