package store_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident/track"
	"github.com/haechi-sec/haechi/internal/store"
)

// keeperAlerts returns rounds of alerts over small pools of principals,
// tokens, keys and addresses, so that the incident keeper joins, grows,
// merges and withdraws incidents: each round new alerts and earlier ones
// saved again with more findings (or, now and then, none standing).
func keeperAlerts(r *rand.Rand, rounds int) [][]event.Alert {
	t0 := time.Date(2025, 6, 2, 8, 0, 0, 0, time.UTC)
	var known []event.Alert
	var out [][]event.Alert
	ev := 0
	cluster := map[string]int{} // alert ID → the cluster of entities its findings name
	finding := func(at time.Time, subject event.EntityKey, cl int) event.Finding {
		ev++
		c := event.Citation{Ref: fmt.Sprintf("ev-%d", ev), Success: r.IntN(5) > 0, Principal: fmt.Sprintf("p-%d-%d", cl, r.IntN(4)),
			Token: fmt.Sprintf("tk-%d-%d", cl, r.IntN(3)), Key: fmt.Sprint("key-", cl), Source: fmt.Sprintf("45.77.%d.%d", cl, r.IntN(3)),
			ASN: uint32(64500 + cl), UserAgent: fmt.Sprintf("client-%d/1.0", cl)}
		refs := []string{c.Ref, fmt.Sprintf("raw-%d", ev)} // one cited, one not
		dets := []struct{ det, kind string }{{"principal_geo", "hosting_network"}, {"token_provenance", "token_never_minted"},
			{"token_binding", "token_replay"}, {"credential_network", "credential_sharing"}}
		d := dets[r.IntN(len(dets))]
		return event.Finding{Detector: d.det, Kind: d.kind, Entity: subject, Time: at, Score: 80, Severity: event.SeverityHigh,
			Evidence: refs, Cited: []event.Citation{c},
			Related: []event.EntityKey{{Kind: event.EntityToken, ID: c.Token}, {Kind: event.EntitySource, ID: c.Source}}}
	}
	for round := range rounds {
		var batch []event.Alert
		for range 1 + r.IntN(25) {
			if len(known) > 0 && r.IntN(2) == 0 {
				a := known[r.IntN(len(known))]
				a.Findings = slices.Clone(a.Findings)
				for range 1 + r.IntN(3) {
					a.Findings = append(a.Findings, finding(a.LastTime.Add(time.Minute), a.Entity, cluster[a.ID]))
					a.LastTime = a.LastTime.Add(time.Minute)
				}
				if r.IntN(15) == 0 {
					a.State, a.Findings = event.AlertWithdrawn, nil
				}
				a.FindingCount = len(a.Findings)
				batch = append(batch, a)
				continue
			}
			at := t0.Add(time.Duration(round*60+r.IntN(600)) * time.Minute)
			cl := r.IntN(12)
			subject := event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprintf("p-%d-%d", cl, r.IntN(4))}
			if r.IntN(3) == 0 {
				subject = event.EntityKey{Kind: event.EntitySource, ID: fmt.Sprintf("45.77.%d.%d", cl, r.IntN(3))}
			}
			if r.IntN(80) == 0 { // now and then a bridge between two clusters
				cl = r.IntN(12)
			}
			f := finding(at, subject, cl)
			id := fmt.Sprintf("al-%d-%d", round, len(batch))
			cluster[id] = cl
			a := event.Alert{ID: id, Time: at, Entity: subject, Severity: event.SeverityHigh,
				Score: 80, Title: f.Kind, State: event.AlertOpen, Detector: f.Detector, LastTime: at, FindingCount: 1,
				Findings: []event.Finding{f}}
			batch = append(batch, a)
		}
		for _, a := range batch {
			if i := slices.IndexFunc(known, func(k event.Alert) bool { return k.ID == a.ID }); i >= 0 {
				known[i] = a
			} else {
				known = append(known, a)
			}
		}
		out = append(out, batch)
	}
	return out
}

// TestKeeperStatementsEqualPerTx: with the incident keeper, the statements
// from the cache — IN lists padded to a power of two, multi-row inserts
// as statements of powers of two rows — store exactly the rows of every
// table (incidents, their alerts, keys, citations, aliases) that the
// statements of their own length prepared per transaction stored.
func TestKeeperStatementsEqualPerTx(t *testing.T) {
	targets := map[string]func() string{"sqlite": func() string { return t.TempDir() }}
	if os.Getenv("HAECHI_TEST_POSTGRES") != "" {
		targets["postgres"] = func() string { return store.PostgresTarget(t) }
	}
	for name, target := range targets {
		t.Run(name, func(t *testing.T) {
			for seed := range uint64(4) {
				rounds := keeperAlerts(rand.New(rand.NewPCG(seed, 38)), 30)
				var stores []*store.Store
				for i := range 2 {
					s, err := store.Open(t.Context(), target(), store.Options{Incidents: track.New(track.Options{})})
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { _ = s.Close() })
					if i == 0 {
						store.SetPerTxStatements(s)
					}
					stores = append(stores, s)
				}
				for _, s := range stores {
					for _, b := range rounds {
						if err := s.SaveAlerts(t.Context(), b); err != nil {
							t.Fatal(err)
						}
					}
				}
				want, got := store.DumpTables(t, stores[0]), store.DumpTables(t, stores[1])
				if len(want["incidents"]) < 2 || len(want["citations"]) == 0 {
					t.Fatalf("seed %d: %d incidents, %d citations: the scenario groups nothing", seed, len(want["incidents"]), len(want["citations"]))
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("seed %d: rows differ (-per transaction +cached):\n%s", seed, diff)
				}
			}
		})
	}
}
