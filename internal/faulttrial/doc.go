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
// alerts, findings, ledger, response actions and incidents with those of a
// clean run of the same events (no kills): they must be identical.
//
// The ledger is compared cell by cell — dimension, value, day, record
// type, field, first and last access — and by the record ids each cell
// holds, named through the ledger's dictionary: the dictionary's numbers
// depend on which shard met an id first, so they differ between runs, and
// a comparison of numbers or counts would not see a record stored under
// another's number. Both dictionaries must hold the same record ids, each
// once, and every number a cell holds must have its entry. Incidents are
// compared as the keeper stored them (all but wall-clock columns), besides
// which incident each alert is in, and so are what later alerts join
// through: the alerts' join keys and the cited events' facts.
//
// CI runs a short trial (HAECHI_FAULT_KILLS, default 10, over about 44,000
// events). The long trial (about 1 M events) is run by hand:
//
//	HAECHI_FAULT_KILLS=100 HAECHI_FAULT_DAYS=8 HAECHI_FAULT_CUSTOMERS=185000 \
//	  go test ./internal/faulttrial -run FaultTrial -timeout 150m -v
//
// HAECHI_FAULT_LEDGER_ENGINE=pebble runs both runs with the access ledger
// in pebble (store.ledger_engine); the ledger is compared through the
// store's API either way. HAECHI_FAULT_DIR keeps both runs' stores and
// logs; HAECHI_FAULT_COMPARE=<that dir> compares kept stores again
// (TestFaultTrialStored) without running the trial, and
// HAECHI_FAULT_RESUME=<that dir> finishes a kept trial whose streaming
// ended (TestFaultTrialFinish: drain, stop, start, drain, deliver, stop,
// compare).
//
// HAECHI_FAULT_SIGNAL=quit kills with SIGQUIT instead: the Go runtime
// stops every goroutine, prints their stacks and exits — as abrupt for
// what is on disk — and the trial logs what the kills interrupted (a
// ledger flush building or committing its pebble batch, SQLite's
// dictionary insert, the spool's append, the store writer, the incident
// keeper, a checkpoint; killPhases).
//
// Not covered: refusals of the inline check (the trial posts events only;
// a refusal is queued in memory for up to a second before it reaches the
// spool, so a kill may lose it by design).
package faulttrial
