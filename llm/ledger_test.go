package llm_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
	"github.com/sieve-data/sieve/llm/llmtest"
)

// TestSharedBudgetTwoProcesses runs two processes (this test binary,
// as TestLedgerWorker) that call one OpenAI-compatible server with one
// recipe budget of tokens, sharing a BudgetLedger directory. Together
// they must stop at the budget, passing it by no more than one call in
// flight each; each process on its own would spend the whole budget.
func TestSharedBudgetTwoProcesses(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{})
	defer srv.Close()
	dir := t.TempDir()
	const budget = 3000
	var usages [2]llm.Usage
	var cmds [2]*exec.Cmd
	for i := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run=^TestLedgerWorker$", "-test.count=1")
		cmd.Env = append(os.Environ(), "SIEVE_LEDGER_WORKER="+strconv.Itoa(i), "SIEVE_LEDGER_DIR="+dir,
			"SIEVE_LEDGER_URL="+srv.URL, "SIEVE_LEDGER_BUDGET="+strconv.Itoa(budget), keyEnv+"="+testKey)
		cmd.Stderr = os.Stderr
		cmds[i] = cmd
	}
	outs := make([]chan []byte, 2)
	for i, cmd := range cmds {
		outs[i] = make(chan []byte, 1)
		go func() {
			out, err := cmd.Output()
			if err != nil {
				t.Errorf("worker %d: %v\n%s", i, err, out)
			}
			outs[i] <- out
		}()
	}
	for i := range cmds {
		out := <-outs[i]
		if err := json.NewDecoder(bytes.NewReader(out[bytesIndex(out, '{'):])).Decode(&usages[i]); err != nil {
			t.Fatalf("worker %d printed %q: %v", i, out, err)
		}
	}
	var total, calls, perCall int64
	for i, u := range usages {
		if u.Calls == 0 || u.BudgetRefusals == 0 {
			t.Errorf("worker %d: %+v; want calls, then a budget refusal", i, u)
		}
		total += u.TotalTokens
		calls += u.Calls
		if u.Calls > 0 {
			perCall = max(perCall, (u.TotalTokens+u.Calls-1)/u.Calls)
		}
	}
	if int64(srv.Count()) != calls {
		t.Errorf("server answered %d requests, workers counted %d calls", srv.Count(), calls)
	}
	t.Logf("budget %d tokens: spent %d and %d (total %d) in %d calls of about %d tokens",
		budget, usages[0].TotalTokens, usages[1].TotalTokens, total, calls, perCall)
	if total > budget+2*perCall {
		t.Errorf("two processes spent %d tokens of a %d-token budget: more than one call (%d tokens) in flight each past it", total, budget, perCall)
	}
	if total < budget-2*budget/llm.LedgerBlocks-2*perCall {
		t.Errorf("two processes spent only %d tokens of a %d-token budget", total, budget)
	}
}

// TestLedgerWorker is one process of TestSharedBudgetTwoProcesses: it
// calls until the shared budget refuses, then prints its usage.
func TestLedgerWorker(t *testing.T) {
	id := os.Getenv("SIEVE_LEDGER_WORKER")
	if id == "" {
		t.Skip("a worker of TestSharedBudgetTwoProcesses")
	}
	budget, _ := strconv.ParseInt(os.Getenv("SIEVE_LEDGER_BUDGET"), 10, 64)
	ep := llm.Endpoint{Name: "judge", Kind: llm.KindOther, BaseURL: os.Getenv("SIEVE_LEDGER_URL"), Model: "test-model",
		APIKeyEnv: keyEnv, Timeout: llm.Duration(5 * time.Second), MaxConcurrency: 4, Budget: llm.Budget{MaxTokens: budget}}
	c, err := llm.New(ep, llm.Options{Ledger: datasets.BudgetLedger{Dir: os.Getenv("SIEVE_LEDGER_DIR")}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			for n := 0; n < 10000; n++ {
				if _, err := c.Chat(ctx, user(fmt.Sprintf("worker %s goroutine %d question %d", id, g, n))); err != nil {
					errs <- err
					return
				}
			}
			errs <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-errs; !errors.Is(err, llm.ErrBudgetExhausted) {
			t.Fatalf("want the budget to stop the calls, got %v", err)
		}
	}
	out, _ := json.Marshal(c.Usage())
	fmt.Println(string(out))
}

func bytesIndex(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return 0
}
