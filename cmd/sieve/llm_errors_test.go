package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sieve-data/sieve/llm/llmtest"
)

// TestLLMEndpointFailuresFailTheRun: an LLM stage whose endpoint is
// unreachable (a closed port) or refuses the key (401) fails the run with
// one sieve: line naming the stage and the cause, and commits nothing;
// with allow_failure: true the run commits the samples as they were.
func TestLLMEndpointFailuresFailTheRun(t *testing.T) {
	srv := llmtest.Start(llmtest.Config{APIKey: "sk-right-key-0123456789"})
	defer srv.Close()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.jsonl"), alpacaLines(5, 0))
	closed := fmt.Sprintf("http://127.0.0.1:%d/v1", freePort(t))
	recipes := map[string]string{
		"closed": `name: closed
sources: [{name: a, path: a.jsonl, format: alpaca}]
stages:
  - evol_instruct: {endpoint: {name: gen, kind: other, base_url: "` + closed + `", model: m, max_retries: 1}, operations: [deepen], cache: cacheALLOW}
`,
		"unauthorized": `name: unauthorized
sources: [{name: a, path: a.jsonl, format: alpaca}]
stages:
  - judge: {endpoint: {name: judge, kind: other, base_url: "` + srv.URL + `", model: m, api_key_env: SIEVE_TEST_WRONG_KEY}, rubric: helpfulness, cache: cacheALLOW}
`,
	}
	want := map[string][]string{
		"closed":       {"stage evol_instruct", "every call failed", "nothing committed", "connection refused"},
		"unauthorized": {"stage judge", "401", "check $SIEVE_TEST_WRONG_KEY"},
	}
	env := append(os.Environ(), "SIEVE_TEST_WRONG_KEY=sk-wrong-key-9876543210")
	for _, name := range []string{"closed", "unauthorized"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name+".yaml")
			writeFile(t, path, []byte(strings.Replace(recipes[name], "ALLOW", "", 1)))
			store := filepath.Join(dir, "store")
			start := time.Now()
			r := sieveEnv(t, env, "run", path, "--store", store)
			oneErrorLine(t, r, 1, want[name]...)
			if strings.Contains(r.stderr, "sk-wrong-key") || strings.Contains(r.stdout, "sk-wrong-key") {
				t.Errorf("the key leaked: %q", r.stderr)
			}
			if d := time.Since(start); d > 60*time.Second {
				t.Errorf("took %v", d)
			}
			if vs, _ := filepath.Glob(filepath.Join(store, name, "v*")); len(vs) != 0 {
				t.Errorf("a failed run committed %v", vs)
			}
			writeFile(t, path, []byte(strings.Replace(recipes[name], "ALLOW", ", allow_failure: true", 1)))
			r = sieveEnv(t, env, "run", path, "--store", store)
			if r.code != 0 {
				t.Fatalf("allow_failure: exit %d: %s", r.code, r.stderr)
			}
			if m := readManifest(t, filepath.Join(store, name, "v1")); m.Funnel.Written != 5 {
				t.Errorf("allow_failure: wrote %d, want the 5 samples as they were", m.Funnel.Written)
			}
		})
	}
}

// sieveEnv runs the binary with the environment env.
func sieveEnv(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(sieveBin, args...)
	cmd.Env = env
	r, err := runCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
