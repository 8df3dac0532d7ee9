package llmtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func post(t *testing.T, url, body string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %q: %v", b, err)
	}
	return resp.StatusCode, m
}

func errorOf(t *testing.T, m map[string]any) map[string]any {
	t.Helper()
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %v", m)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := e[k]; !ok {
			t.Fatalf("error lacks %q: %v", k, e)
		}
	}
	return e
}

func TestProtocol(t *testing.T) {
	s := Start(Config{APIKey: "k", Models: []string{"m"}})
	defer s.Close()
	auth := map[string]string{"Authorization": "Bearer k", "Content-Type": "application/json"}
	url := s.URL + "/chat/completions"

	code, m := post(t, url, `{"model":"m","messages":[{"role":"user","content":"hello"}],"temperature":0}`, auth)
	if code != 200 || m["object"] != "chat.completion" {
		t.Fatalf("%d %v", code, m)
	}
	ch := m["choices"].([]any)[0].(map[string]any)
	if ch["message"].(map[string]any)["content"] != "echo: hello" || ch["finish_reason"] != "stop" {
		t.Fatalf("%v", ch)
	}
	u := m["usage"].(map[string]any)
	if int(u["prompt_tokens"].(float64)) != PromptTokens([]Message{{"user", "hello"}}) || int(u["completion_tokens"].(float64)) != Tokens("echo: hello") {
		t.Fatalf("usage %v", u)
	}

	for _, tc := range []struct {
		body   string
		header map[string]string
		status int
		code   any
	}{
		{`{"model":"m","messages":[{"role":"user","content":"x"}]}`, nil, 401, nil},
		{`{"model":"m","messages":[{"role":"user","content":"x"}]}`, map[string]string{"Authorization": "Bearer nope"}, 401, "invalid_api_key"},
		{`{"model":"x","messages":[{"role":"user","content":"x"}]}`, auth, 404, "model_not_found"},
		{`{"model":"m","messages":[]}`, auth, 400, nil},
		{`not json`, auth, 400, nil},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3}`, auth, 400, nil},
		{`{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"schema":{}}}}`, auth, 400, nil},
	} {
		code, m := post(t, url, tc.body, tc.header)
		e := errorOf(t, m)
		if code != tc.status || (tc.code != nil && e["code"] != tc.code) {
			t.Errorf("%s: %d %v", tc.body, code, e)
		}
	}
	if s.Count() != 8 || len(s.Requests()) != 8 || s.Requests()[0].Request.Temperature == nil {
		t.Fatalf("%d requests captured", s.Count())
	}
}

func TestScriptAndDecide(t *testing.T) {
	s := Start(Config{Decide: func(n int, r *ChatRequest) *Step {
		if r.LastUser() == "fail" {
			return &Step{Status: 503, RetryAfter: "2"}
		}
		return nil
	}})
	defer s.Close()
	url := s.URL + "/chat/completions"
	s.Script(RateLimited("1"), Truncated("cut"))
	body := `{"model":"m","messages":[{"role":"user","content":"x"}]}`
	if code, m := post(t, url, body, nil); code != 429 || errorOf(t, m)["code"] != "rate_limit_exceeded" {
		t.Fatalf("%d %v", code, m)
	}
	if s.Requests()[0].Status != 429 {
		t.Fatal(s.Requests()[0].Status)
	}
	_, m := post(t, url, body, nil)
	if ch := m["choices"].([]any)[0].(map[string]any); ch["finish_reason"] != "length" {
		t.Fatalf("%v", ch)
	}
	if code, _ := post(t, url, `{"model":"m","messages":[{"role":"user","content":"fail"}]}`, nil); code != 503 {
		t.Fatal(code)
	}
}

func TestAzurePathAndSchemaInstance(t *testing.T) {
	s := Start(Config{APIKey: "k"})
	defer s.Close()
	body := `{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"r","strict":true,"schema":{"type":"object","properties":{"score":{"type":"integer","minimum":1},"tags":{"type":"array","items":{"enum":["a","b"]}}}}}}}`
	if code, _ := post(t, s.Root+"/openai/deployments/d/chat/completions", body, map[string]string{"api-key": "k"}); code != 404 {
		t.Fatalf("missing api-version: %d", code)
	}
	code, m := post(t, s.Root+"/openai/deployments/d/chat/completions?api-version=2024-10-21", body, map[string]string{"api-key": "k"})
	if code != 200 {
		t.Fatalf("%d %v", code, m)
	}
	text := m["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
	if text != `{"score":1,"tags":["a"]}` {
		t.Fatal(text)
	}
	if s.Requests()[1].Deployment != "d" {
		t.Fatal(s.Requests()[1].Deployment)
	}
}
