// Package layout holds no code. Its test states which packages of haechi
// may import which, and which package owns each third-party module, so the
// layout docs/architecture.md describes stays true (the idea of
// tailscale's tstest/deptest, over the whole module).
//
// The rule, from the inside out (only non-test imports are checked; a test
// may reach further out, as console's tests build an app):
//
//   - The vocabulary and leaf helpers — event, clock, snap, spool, netname,
//     truth, detect/baseline — import nothing of the module but event (and
//     snap), and no third-party module.
//   - The detection path — decode, input/..., enrich, engine, the detectors,
//     rules, sigma, alert — imports only the vocabulary and the stages
//     before it (input reads through decode; detectors and rules implement
//     engine's interfaces). A detector imports no other detector. Nothing
//     on the path imports the store, a surface, the assembly or the
//     command line.
//   - Storage and output stages — store, auth, ledger, report, respond,
//     config — import the vocabulary, the stages whose values they keep,
//     and the store.
//   - Surfaces — api, console, kafka, ingest — import stages and the store,
//     never app or cli.
//   - The assembly, app, imports all of the above and is imported only by
//     cli, demo and eval. cli imports what its subcommands run; only cmd/haechi
//     imports cli. sim, eval and demo sit beside the pipeline; only cli
//     imports demo (and internal/eval's own test keeps sim, truth and eval
//     off the detection path).
//
// Edges the rule forbids and the code still has are listed as exceptions,
// each with its way out; the test fails once an exception is no longer
// used, so it is deleted and the rule tightens.
package layout
