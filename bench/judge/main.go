// Command judge measures the judge stage's client path against sieve's
// OpenAI-compatible test server with a simulated model latency: an LLM
// judge (helpfulness rubric, JSON-schema answers, strict parsing) scoring
// samples through package llm at several concurrency limits, with a fresh
// (cold) response cache each time. It prints one JSON line per
// concurrency: requests/s, mean latency per call and the overhead per call
// over the simulated latency.
//
//	go run ./bench/judge [-latency 50ms] [-seconds 3]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/judges"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/llm/llmtest"
)

func main() {
	latency := flag.Duration("latency", 50*time.Millisecond, "simulated model latency per request")
	seconds := flag.Float64("seconds", 3, "measuring time per concurrency")
	flag.Parse()
	srv := llmtest.Start(llmtest.Config{APIKey: "sk-bench", Latency: *latency, Respond: func(*llmtest.ChatRequest) string {
		return `{"rationale":"fine","scores":{"helpfulness":4,"relevance":5,"clarity":4}}`
	}})
	defer srv.Close()
	os.Setenv("SIEVE_BENCH_KEY", "sk-bench")
	rubric, err := judges.LoadRubric("helpfulness")
	if err != nil {
		fail(err)
	}
	enc := json.NewEncoder(os.Stdout)
	for _, conc := range []int{1, 16, 64} {
		cache, _ := os.MkdirTemp("", "sieve-judge-bench")
		retries := 0
		ep := llm.Endpoint{Name: "bench", Kind: "other", BaseURL: srv.URL, Model: "m", APIKeyEnv: "SIEVE_BENCH_KEY",
			MaxConcurrency: conc, MaxRetries: &retries}
		client, err := llm.New(ep, llm.Options{CacheDir: cache})
		if err != nil {
			fail(err)
		}
		j, err := judges.NewLLMJudge(client, rubric, judges.LLMOptions{})
		if err != nil {
			fail(err)
		}
		var calls, failures atomic.Int64
		var total atomic.Int64 // nanoseconds spent in Score
		deadline := time.Now().Add(time.Duration(*seconds * float64(time.Second)))
		start := time.Now()
		var wg sync.WaitGroup
		var seq atomic.Int64
		for w := 0; w < conc; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(deadline) {
					i := seq.Add(1)
					msgs := []datasets.Message{{Role: "user", Content: fmt.Sprintf("Question %d: what is a monad?", i)},
						{Role: "assistant", Content: "A monad is a way to sequence computations with context."}}
					s := datasets.Sample{ID: datasets.ContentID(msgs), Messages: msgs}
					t0 := time.Now()
					if _, err := j.Score(context.Background(), s); err != nil {
						failures.Add(1)
					}
					total.Add(int64(time.Since(t0)))
					calls.Add(1)
				}
			}()
		}
		wg.Wait()
		wall := time.Since(start).Seconds()
		n := calls.Load()
		mean := time.Duration(total.Load() / max(n, 1))
		enc.Encode(map[string]any{
			"bench": "judge_stage_throughput", "concurrency": conc, "value": float64(n) / wall, "unit": "requests/s",
			"calls": n, "failures": failures.Load(), "mean_call_ms": float64(mean) / 1e6,
			"overhead_per_call_ms": float64(mean-*latency) / 1e6, "simulated_latency_ms": float64(*latency) / 1e6,
			"ideal_requests_per_s": float64(conc) / latency.Seconds(),
			"machine":              fmt.Sprintf("%d cores", runtime.NumCPU()),
		})
		os.RemoveAll(cache)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "judge bench:", err)
	os.Exit(1)
}
