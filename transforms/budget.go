package transforms

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"

	"github.com/sieve-data/sieve/datasets"
	"github.com/sieve-data/sieve/llm"
)

// budgetLedger is the ledger that makes an LLM stage's budget one budget
// for all the run's worker processes (llm.Ledger): under the run's
// ledger directory dir, one ledger per endpoint and cache, as processes
// share one client per endpoint and cache (llm.Shared). An empty dir
// (no ledger) keeps the budget per process.
func budgetLedger(dir string, ep llm.Endpoint, cacheDir string) llm.Ledger {
	if dir == "" {
		return nil
	}
	key, _ := json.Marshal(ep)
	sum := sha256.Sum256(append(append(key, 0), cacheDir...))
	return datasets.BudgetLedger{Dir: dir + "/" + hex.EncodeToString(sum[:8])}
}
