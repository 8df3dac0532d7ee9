package datasets

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestBudgetLedger: each block goes to one claimer of many racing
// goroutines; the ledger lives beside the staging directory, not in it,
// and is removed with RemoveBudgetLedger.
func TestBudgetLedger(t *testing.T) {
	store := Store{Root: t.TempDir()}
	staging := store.NewStaging("ds")
	defer store.Discard(staging)
	dir := BudgetLedgerDir(staging)
	if want := filepath.Join(store.Root, "ds", "_budget", filepath.Base(staging)); dir != want {
		t.Fatalf("ledger dir %s; want %s", dir, want)
	}
	if got := BudgetLedgerDir("gs://b/s/ds/_staging/x"); got != "gs://b/s/ds/_budget/x" {
		t.Errorf("gs:// ledger dir %s", got)
	}
	l := BudgetLedger{Dir: dir + "/ep"}
	var mu sync.Mutex
	wins := map[int]int{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 16; n++ {
				ok, err := l.Claim(context.Background(), n)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					mu.Lock()
					wins[n]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for n := 0; n < 16; n++ {
		if wins[n] != 1 {
			t.Errorf("block %d claimed %d times", n, wins[n])
		}
	}
	if err := RemoveBudgetLedger(context.Background(), staging); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(store.Root, "ds", "_budget")); !os.IsNotExist(err) {
		t.Errorf("ledger left behind: %v", err)
	}
}
