package llm

import "context"

// Ledger shares an endpoint's budget among processes (Beam workers): the
// budget is cut into LedgerBlocks equal blocks of tokens and cost, and a
// client spends a block only after claiming it. Claim takes block n
// (0, 1, …) for this process and reports false when another process has
// it; every block goes to one process at most. datasets.BudgetLedger
// claims blocks as files created only if absent, on a local or gs://
// store.
type Ledger interface {
	Claim(ctx context.Context, n int) (bool, error)
}

// LedgerBlocks is how many blocks a shared budget is cut into. A process
// that stops holds at most one part-spent block, so the processes
// together spend at least the budget less one block each (and at most
// the budget plus the calls each has in flight when it runs out).
const LedgerBlocks = 32
