package datasets

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
)

// BudgetLedger shares one LLM budget among the processes of a run (Beam
// workers, on one machine or many): the budget is cut into blocks
// (llm.LedgerBlocks) and a process may spend a block only after claiming
// it here, by creating Dir/block-NNNNNN only if absent (WriteExclusive:
// O_EXCL locally, a create-only write on gs://). Each block goes to
// exactly one process, so the processes together spend at most the
// blocks they claimed, which sum to the budget, plus what each one's
// last calls in flight use. It satisfies llm.Ledger; Dir is local or
// gs:// (a binary that links package transforms).
type BudgetLedger struct {
	Dir string
}

// Claim takes block n for this process, reporting false when another
// process took it first. The block's file holds "PID HOST TIME".
func (l BudgetLedger) Claim(ctx context.Context, n int) (bool, error) {
	file := fmt.Sprintf("%s/block-%06d", l.Dir, n)
	err := WriteExclusive(ctx, file, []byte(holder()))
	if exists(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("budget ledger: %w", err)
	}
	return true, nil
}

// BudgetLedgerDir is where the run staging in staging keeps its budget
// ledgers: <root>/<name>/_budget/<staging id>, beside (not in) the
// staging directory, so that nothing of it is committed with the
// version. A dir that is not a staging directory gets dir/_budget.
func BudgetLedgerDir(staging string) string {
	s := strings.TrimRight(staging, "/")
	if i := strings.LastIndex(s, "/"+stagingDir+"/"); i >= 0 {
		return s[:i] + "/" + budgetDir + "/" + s[i+len(stagingDir)+2:]
	}
	return s + "/" + budgetDir
}

const budgetDir = "_budget"

// RemoveBudgetLedger removes the ledgers of the run staging in staging
// (see BudgetLedgerDir), once the run has ended.
func RemoveBudgetLedger(ctx context.Context, staging string) error {
	dir := BudgetLedgerDir(staging)
	if !isURL(dir) {
		err := os.RemoveAll(dir)
		os.Remove(path.Dir(dir)) // <name>/_budget, if now empty
		return err
	}
	files, err := List(ctx, dir+"/*/block-*")
	if err != nil {
		return err
	}
	for _, f := range files {
		if err := Remove(ctx, f); err != nil {
			return fmt.Errorf("remove budget ledger: %w", err)
		}
	}
	return nil
}
