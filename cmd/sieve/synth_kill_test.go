package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm/llmtest"
)

// TestKilledGenerationResumesFromCache kills `sieve run` (SIGKILL) in
// the middle of a chain_of_thought stage against an OpenAI-compatible
// server, reruns it, and checks at the server that no request answered
// before the kill is sent again: the response cache makes a killed run
// resume without paying twice. The key never reaches the files.
func TestKilledGenerationResumesFromCache(t *testing.T) {
	const key = "sk-kill-test-7f3a"
	const latency = 150 * time.Millisecond
	srv := llmtest.Start(llmtest.Config{APIKey: key, Latency: latency, Respond: func(r *llmtest.ChatRequest) string {
		return "<reasoning>Work through it step by step.</reasoning><answer>Answer to: " + strings.SplitN(r.LastUser(), "\n", 2)[0] + "</answer>"
	}})
	defer srv.Close()
	dir := t.TempDir()
	var in strings.Builder
	const n = 40
	for i := 0; i < n; i++ {
		fmt.Fprintf(&in, `{"prompt":"What is %d plus %d?","completion":"%d"}`+"\n", i, i+1, 2*i+1)
	}
	os.WriteFile(filepath.Join(dir, "q.jsonl"), []byte(in.String()), 0o644)
	recipe := filepath.Join(dir, "r.yaml")
	os.WriteFile(recipe, []byte(`name: cot
sources: [{name: q, path: q.jsonl}]
stages:
  - chain_of_thought:
      endpoint: {name: gen, kind: other, base_url: "`+srv.URL+`", model: m, api_key_env: SIEVE_KILL_KEY, max_concurrency: 4}
      cache: cache
`), 0o644)
	t.Setenv("SIEVE_KILL_KEY", key)
	store := filepath.Join(dir, "store")

	cmd := exec.Command(sieveBin, "run", recipe, "--store", store, "--quiet")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for srv.Count() < 24 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	cmd.Wait()
	first := srv.Requests()
	// Requests answered well before the kill were cached by the client.
	answered := map[string]bool{}
	for _, c := range first {
		if c.Status == 200 && c.At.Add(latency).Before(killed.Add(-100*time.Millisecond)) {
			answered[string(c.Body)] = true
		}
	}
	if len(answered) < 8 {
		t.Fatalf("only %d requests answered before the kill; the test needs more", len(answered))
	}

	if r := sieve(t, "run", recipe, "--store", store, "--quiet"); r.code != 0 {
		t.Fatal(r.stderr)
	}
	all := srv.Requests()
	repeated := 0
	for _, c := range all[len(first):] {
		if answered[string(c.Body)] {
			repeated++
		}
	}
	if repeated > 0 {
		t.Errorf("the rerun sent %d requests answered before the kill", repeated)
	}
	if got := len(all); got > n+len(first)-len(answered) {
		t.Errorf("%d requests in all for %d prompts (%d answered before the kill)", got, n, len(answered))
	}
	t.Logf("kill after %d requests (%d answered); rerun sent %d", len(first), len(answered), len(all)-len(first))

	b, err := os.ReadFile(filepath.Join(store, "cot", "v1", "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m datasets.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Funnel.Written != n || len(m.LLM) != 1 || m.LLM[0].CachedCalls < int64(len(answered)) {
		t.Errorf("written %d, llm %+v", m.Funnel.Written, m.LLM)
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), key) {
				t.Errorf("the API key is written in %s", p)
			}
		}
		return nil
	})
}
