package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
)

// keysKeeper sets join keys from inside the save transaction: the rounds'
// keys one alert at a time (SetAlertKeys) or all at once (SetAlertsKeys),
// then with the keys it set before as Stored (unless told to forget).
type keysKeeper struct {
	batched bool
	round   []AlertKeys
	forget  map[string]bool
	set     map[string]AlertKeys
}

func (k *keysKeeper) AlertsSaved(ctx context.Context, tx *IncidentTx, _ []event.Alert) error {
	if k.batched {
		round := slices.Clone(k.round)
		for i, a := range round {
			if prev, ok := k.set[a.ID]; ok && !k.forget[a.ID] {
				round[i].Stored = &prev
			}
		}
		if err := tx.SetAlertsKeys(ctx, round); err != nil {
			return err
		}
		for _, a := range k.round {
			k.set[a.ID] = a
		}
		return nil
	}
	for _, a := range k.round {
		if err := tx.SetAlertKeys(ctx, a.ID, a.Named, a.Cited); err != nil {
			return err
		}
	}
	return nil
}

// keyRows reads incident_keys whole, sorted.
func keyRows(t *testing.T, s *Store) []string {
	t.Helper()
	rows, err := s.db.QueryContext(t.Context(), "SELECT join_key, alert_id, cited FROM incident_keys")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var k, id string
		var cited int
		if err := rows.Scan(&k, &id, &cited); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %d", k, id, cited))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// TestSetAlertsKeysEqualsOneByOne: over random rounds of keys — alerts
// given again with other keys, grown keys, keys moved between named and
// cited, none, twice in a round, more rows than one statement holds —
// the batched SetAlertsKeys, given the keys it set before as Stored (for
// most alerts) or not, leaves incident_keys row for row as SetAlertKeys
// called per alert in order does.
func TestSetAlertsKeysEqualsOneByOne(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		r := rand.New(rand.NewPCG(22, 36))
		var rounds [][]AlertKeys
		for range 12 {
			var round []AlertKeys
			for range 1 + r.IntN(40) {
				a := AlertKeys{ID: fmt.Sprintf("al-%d", r.IntN(30))}
				for range r.IntN(30) {
					a.Named = append(a.Named, fmt.Sprintf("k%d", r.IntN(60)))
				}
				for range r.IntN(30) {
					a.Cited = append(a.Cited, fmt.Sprintf("k%d", r.IntN(60)))
				}
				if r.IntN(3) == 0 {
					// Keys that grew from the alert's last ones, one
					// moved between named and cited.
					for _, prev := range slices.Backward(round) {
						if prev.ID == a.ID {
							a.Named = append(slices.Clone(prev.Named), a.Named[:min(2, len(a.Named))]...)
							a.Cited = append(slices.Clone(prev.Cited), prev.Named[:min(1, len(prev.Named))]...)
							break
						}
					}
				}
				round = append(round, a)
			}
			rounds = append(rounds, round)
		}
		// One round of more keys than an IN list or a statement holds.
		big := AlertKeys{ID: "al-big"}
		for i := range 3 * inChunk {
			big.Named = append(big.Named, fmt.Sprintf("big%d", i))
		}
		rounds = append(rounds, []AlertKeys{big})
		var stores [2]*Store
		forget := map[string]bool{"al-3": true, "al-7": true}
		for i, batched := range []bool{false, true} {
			k := &keysKeeper{batched: batched, forget: forget, set: map[string]AlertKeys{}}
			s, err := Open(t.Context(), b.target(t), Options{Incidents: k})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			stores[i] = s
			at := time.Date(2025, 6, 4, 0, 0, 0, 0, time.UTC)
			for ri, round := range rounds {
				k.round = round
				if err := s.SaveAlerts(t.Context(), []event.Alert{{ID: fmt.Sprintf("x-%d", ri), Time: at}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		one, batched := keyRows(t, stores[0]), keyRows(t, stores[1])
		if len(one) < 3*inChunk {
			t.Fatalf("only %d rows stored", len(one))
		}
		if diff := cmp.Diff(one, batched); diff != "" {
			t.Errorf("incident_keys differ (-one by one +batched):\n%s", diff)
		}
	})
}
