package track

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// freshKeeper is a Keeper that remembers nothing: every batch reads and
// derives everything again — the saved alerts read back from the store,
// not taken as store.StoredAlert gives them — and replaces every saved
// alert's join keys: the full regrouping the remembering Keeper must
// match.
type freshKeeper struct{}

func (freshKeeper) AlertsSaved(ctx context.Context, tx *store.IncidentTx, alerts []event.Alert) error {
	k := New(Options{})
	k.readBack = true // the saved alerts as the store reads them back
	return k.AlertsSaved(ctx, tx, alerts)
}

// grown returns a saved again with one finding more (a copy of one of its
// findings, later, citing one more event): as an alert grows while its
// entity keeps misbehaving.
func grown(a event.Alert, r func() uint64, n int) event.Alert {
	a.Findings = slices.Clone(a.Findings)
	f := a.Findings[int(r()%uint64(len(a.Findings)))]
	f.Time = f.Time.Add(time.Duration(1+r()%90) * time.Minute)
	f.Evidence, f.Cited = slices.Clone(f.Evidence), slices.Clone(f.Cited)
	if len(f.Cited) > 0 {
		// A new event: another address, token and client, sometimes
		// signed by the scenario's key or acting as its insider, whom
		// other alerts accuse.
		c := f.Cited[0]
		c.Ref = fmt.Sprintf("%s-again-%d", c.Ref, n)
		c.Source = fmt.Sprintf("198.18.%d.%d", r()%4, r()%8)
		c.Token = fmt.Sprintf("tk-again-%d", r()%6)
		c.ASN, c.UserAgent = uint32(64500+r()%3), fmt.Sprintf("curl/%d", r()%3)
		switch r() % 3 {
		case 0:
			c.Key = "key"
		case 1:
			c.Principal, c.Success = "e:1016", true
		}
		f.Cited = append(f.Cited, c)
		f.Evidence = append(f.Evidence, c.Ref)
	}
	a.Findings = append(a.Findings, f)
	a.FindingCount = len(a.Findings)
	if f.Time.After(a.LastTime) {
		a.LastTime = f.Time
	}
	return a
}

// TestRememberingKeeperEqualsFresh: on random sequences of batches — the
// scenario's alerts in a random order and random batch sizes, alerts
// saved again grown, alerts withdrawn — the Keeper, remembering what it
// read, derived and stored across its batches, keeps exactly the
// incidents (rows and detail) a keeper that reads, derives and writes
// everything again on every batch keeps.
func TestRememberingKeeperEqualsFresh(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := newRand(100 + seed)
			all := scenario()
			for i := len(all) - 1; i > 0; i-- {
				j := int(r() % uint64(i+1))
				all[i], all[j] = all[j], all[i]
			}
			var batches [][]event.Alert
			saved := map[string]event.Alert{}
			var ids []string
			for i := 0; i < len(all); {
				n := 1 + int(r()%24)
				b := slices.Clone(all[i:min(i+n, len(all))])
				i += n
				// Some alerts saved before come again, grown or withdrawn.
				for range int(r() % 4) {
					if len(ids) == 0 {
						break
					}
					a := saved[ids[int(r()%uint64(len(ids)))]]
					if r()%8 == 0 {
						a.State = event.AlertWithdrawn
					} else if a.State != event.AlertWithdrawn {
						a = grown(a, r, len(batches))
					}
					b = append(b, a)
				}
				for _, a := range b {
					if _, ok := saved[a.ID]; !ok {
						ids = append(ids, a.ID)
					}
					saved[a.ID] = a
				}
				batches = append(batches, b)
			}
			remembering := open(t, t.TempDir())
			fresh, err := store.Open(t.Context(), t.TempDir(), store.Options{Incidents: freshKeeper{}})
			if err != nil {
				t.Fatal(err)
			}
			defer fresh.Close()
			for i, b := range batches {
				for _, s := range []*store.Store{remembering, fresh} {
					if err := s.SaveAlerts(t.Context(), b); err != nil {
						t.Fatal(err)
					}
				}
				if i%5 == 4 || i == len(batches)-1 {
					if diff := cmp.Diff(rows(t, fresh), rows(t, remembering)); diff != "" {
						t.Fatalf("after batch %d the incidents differ (-fresh +remembering):\n%s", i, diff)
					}
				}
			}
			if len(rows(t, fresh)) < 3 {
				t.Fatalf("only %d incidents", len(rows(t, fresh)))
			}
		})
	}
}
