// Package faulttrial holds the fault-trial harness of haechi's promise that
// an event it acknowledged is processed exactly once, whatever happens to
// the process (docs/spool.md).
//
// The harness (faulttrial_test.go) generates a deterministic event set with
// the simulator, streams it into a real `haechi serve` child process in
// requests carrying Idempotency-Keys, kills the process with SIGKILL at
// random moments — mid-request, mid-spool-append, mid-replay, mid-flush —
// restarts it on the same data directory and goes on, retrying every
// request that was not acknowledged. At the end it compares the stored
// alerts, findings, ledger and response actions with those of a clean run
// of the same events (no kills): they must be identical.
//
// CI runs a short trial (HAECHI_FAULT_KILLS, default 10, over about 40,000
// events). The long trial is run by hand:
//
//	HAECHI_FAULT_KILLS=100 HAECHI_FAULT_DAYS=8 HAECHI_FAULT_CUSTOMERS=150000 \
//	  go test ./internal/faulttrial -run FaultTrial -timeout 2h -v
//
// HAECHI_FAULT_LEDGER_ENGINE=pebble runs both runs with the access ledger
// in pebble (store.ledger_engine); the ledger is compared through the
// store's API either way.
package faulttrial
