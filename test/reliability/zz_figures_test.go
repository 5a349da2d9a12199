package reliability_test

import "testing"

// TestZZFigures runs last (files and tests run in order) and logs the
// figures that several tests add to: attacks, lost and duplicated messages
// over every sweep, and the known bugs the sweeps met.
func TestZZFigures(t *testing.T) {
	figAttack.log(t)
	ledgerTally.Lock()
	runs, lost, dup := ledgerTally.runs, ledgerTally.lost, ledgerTally.dup
	ledgerTally.Unlock()
	t.Logf("FIGURE sweep-messages-lost %d (over %d faulty runs)", lost, runs)
	t.Logf("FIGURE sweep-messages-duplicated %d (over %d faulty runs)", dup, runs)
	t.Logf("FIGURE ledger-lost %d duplicated %d (interop; 0/0 when the servers are not running)", ledgerLost.Load(), ledgerDup.Load())
	t.Logf("FIGURE server-truncated-bdat-copies %d (go-smtp accepts a BDAT chunk cut by EOF; not counted as deliveries)", truncatedBDAT.Load())
	t.Logf("FIGURE harness-server-lost-after-cut %d (end of data forwarded, nothing stored; the client's unknown stands)", serverLostAfterCut.Load())
	bugs.log(t)
}
