package llm

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sieve-data/sieve/datasets"
)

// fakeClock advances only when slept on.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if d > 0 {
		f.now = f.now.Add(d)
	}
	return ctx.Err()
}

func TestLimiterRequestsPerMinute(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1000, 0)}
	l := newPerMinute(60, clk) // 1 a second, burst 1
	start := clk.Now()
	var at []time.Duration
	for range 10 {
		if err := l.wait(context.Background(), 1); err != nil {
			t.Fatal(err)
		}
		at = append(at, clk.Now().Sub(start))
	}
	for i, d := range at {
		if d != time.Duration(i)*time.Second {
			t.Fatalf("take %d at %v, want %ds (all: %v)", i, d, i, at)
		}
	}
	// A burst of one second's worth: 600/min lets 10 go at once.
	clk2 := &fakeClock{now: time.Unix(1000, 0)}
	l2 := newPerMinute(600, clk2)
	for range 10 {
		l2.wait(context.Background(), 1)
	}
	if d := clk2.Now().Sub(time.Unix(1000, 0)); d != 0 {
		t.Fatalf("burst of 10 waited %v", d)
	}
	l2.wait(context.Background(), 1)
	if d := clk2.Now().Sub(time.Unix(1000, 0)); d != 100*time.Millisecond {
		t.Fatalf("11th take waited %v, want 100ms", d)
	}
}

func TestLimiterTokensReconcile(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	l := newPerMinute(6000, clk) // 100 tokens a second, burst 100
	ctx := context.Background()
	// A take larger than the burst goes at once but delays the next.
	l.wait(ctx, 500)
	if clk.Now() != time.Unix(0, 0) {
		t.Fatal("first take waited")
	}
	// Estimated 500, used 200: 300 come back.
	l.settle(200 - 500)
	l.wait(ctx, 100)
	// tat is at 2s; a burst of 100 may start 0.99s early.
	if d := clk.Now().Sub(time.Unix(0, 0)); d != 1010*time.Millisecond {
		t.Fatalf("waited %v after 200 tokens at 100/s with a burst of 100, want 1.01s", d)
	}
	// Paced over a minute: 6000 tokens of 100-token takes after that
	// take about a minute.
	t0 := clk.Now()
	for range 60 {
		l.wait(ctx, 100)
	}
	if d := clk.Now().Sub(t0); d < 58*time.Second || d > 61*time.Second {
		t.Fatalf("6000 tokens took %v at 6000/min", d)
	}
}

func TestLimiterCancelGivesBack(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	l := newPerMinute(60, clk)
	l.wait(context.Background(), 1)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.wait(ctx, 1); err == nil {
		t.Fatal("cancelled wait succeeded")
	}
	// The cancelled take was given back: the next is due at 1s, not 2s.
	l.wait(context.Background(), 1)
	if got := clk.Now().Sub(time.Unix(0, 0)); got != time.Second {
		t.Fatalf("next take at %v, want 1s", got)
	}
}

func TestEstimateAndLimiters(t *testing.T) {
	clk := &fakeClock{now: time.Unix(0, 0)}
	c, err := New(Endpoint{Name: "e", Kind: KindOther, BaseURL: "http://127.0.0.1:1/v1", Model: "m", TokensPerMinute: 600},
		Options{clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if c.tpm == nil || c.rpm != nil {
		t.Fatal("limiters not built")
	}
	req := Request{Messages: []datasets.Message{{Role: "user", Content: strings.Repeat("x", 400)}}, MaxTokens: 100}
	p, comp := estimateSplit(req)
	if p != 3+4+(400+4+3)/4 || comp != 100 {
		t.Fatalf("estimate %d+%d", p, comp)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		h    map[string]string
		want time.Duration
		ok   bool
	}{
		{map[string]string{"Retry-After": "2"}, 2 * time.Second, true},
		{map[string]string{"Retry-After": "0.5"}, 500 * time.Millisecond, true},
		{map[string]string{"Retry-After": now.Add(7 * time.Second).Format(http.TimeFormat)}, 7 * time.Second, true},
		{map[string]string{"Retry-After": now.Add(-7 * time.Second).Format(http.TimeFormat)}, 0, true},
		{map[string]string{"Retry-After-Ms": "250", "Retry-After": "9"}, 250 * time.Millisecond, true},
		{map[string]string{"Retry-After": "soon"}, 0, false},
		{map[string]string{"Retry-After": "-3"}, 0, false},
		{map[string]string{}, 0, false},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		got, ok := retryAfter(h, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%v: %v %v, want %v %v", tc.h, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	c := &Client{base: 100 * time.Millisecond, maxWait: time.Second}
	for attempt, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 9: time.Second} {
		for range 50 {
			d := c.backoff(attempt)
			if d < full/2 || d > full {
				t.Fatalf("attempt %d: %v outside [%v, %v]", attempt, d, full/2, full)
			}
		}
	}
}

func TestRedactor(t *testing.T) {
	key := "sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	r := newRedactor(key)
	for in, want := range map[string]string{
		"bad key " + key + " given":      "bad key [redacted] given",
		"prefix " + key[:12] + "***":     "prefix [redacted]***",
		"tail ***" + key[len(key)-10:]:   "tail ***[redacted]",
		"nothing secret here at all":     "nothing secret here at all",
		"short " + key[10:15] + " is ok": "short " + key[10:15] + " is ok",
	} {
		if got := r.scrub(in); got != want {
			t.Errorf("scrub(%q) = %q, want %q", in, got, want)
		}
	}
	if got := newRedactor("").scrub("anything"); got != "anything" {
		t.Fatal(got)
	}
	if got := newRedactor("abc").scrub("xabcx"); got != "x[redacted]x" {
		t.Fatal(got)
	}
}

func TestCacheKeyCanonical(t *testing.T) {
	ep := Endpoint{Name: "e", Kind: KindOther, BaseURL: "http://h/v1/", Model: "m"}
	base := Request{Messages: []datasets.Message{{Role: "user", Content: "hi"}},
		JSONSchema: &JSONSchema{Name: "s", Schema: json.RawMessage(`{"type":"object","properties":{"a":{"type":"integer"}}}`)}}
	k := cacheKey(ep, base)
	same := base
	same.JSONSchema = &JSONSchema{Name: "s", Schema: json.RawMessage("{ \"properties\": {\"a\": {\"type\": \"integer\"}},\n \"type\": \"object\" }")}
	ep2 := ep
	ep2.BaseURL = "http://h/v1"
	if cacheKey(ep2, same) != k {
		t.Fatal("schema formatting or a trailing slash changed the key")
	}
	for name, r := range map[string]Request{
		"temperature 0": func() Request { r := base; r.Temperature = Float(0); return r }(),
		"top_p":         func() Request { r := base; r.TopP = Float(0.9); return r }(),
		"seed":          func() Request { r := base; r.Seed = Int(1); return r }(),
		"max tokens":    func() Request { r := base; r.MaxTokens = 10; return r }(),
		"stop":          func() Request { r := base; r.Stop = []string{"\n"}; return r }(),
		"message":       func() Request { r := base; r.Messages = []datasets.Message{{Role: "user", Content: "hi!"}}; return r }(),
		"role":          func() Request { r := base; r.Messages = []datasets.Message{{Role: "system", Content: "hi"}}; return r }(),
		"no schema":     func() Request { r := base; r.JSONSchema = nil; return r }(),
		"strict":        func() Request { r := base; s := *r.JSONSchema; s.Strict = true; r.JSONSchema = &s; return r }(),
	} {
		if cacheKey(ep, r) == k {
			t.Errorf("%s does not change the key", name)
		}
	}
}

func TestPatchJSON(t *testing.T) {
	out, err := patchJSON([]byte(`{"model":"m","messages":[{"role":"user","content":"<b>"}],"stream":false}`),
		wireFields(Request{Temperature: Float(0), TopP: Float(0.25)}))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m["temperature"] != 0.0 || m["top_p"] != 0.25 || m["model"] != "m" || m["messages"].([]any)[0].(map[string]any)["content"] != "<b>" {
		t.Fatalf("%s", out)
	}
	if _, err := patchJSON([]byte(`[1]`), map[string]json.RawMessage{"a": json.RawMessage("1")}); err == nil {
		t.Fatal("patched a non-object")
	}
}
