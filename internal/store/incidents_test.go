package store

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
)

// putKeeper puts fixed incidents from inside the save transaction and
// records what PutIncident returned and what Incidents then read back.
type putKeeper struct {
	ins           []Incident
	put, readBack []Incident
}

func (k *putKeeper) AlertsSaved(ctx context.Context, tx *IncidentTx, alerts []event.Alert) error {
	k.put, k.readBack = nil, nil
	var ids []string
	for _, in := range k.ins {
		got, err := tx.PutIncident(ctx, in, []string{alerts[0].ID})
		if err != nil {
			return err
		}
		k.put = append(k.put, got)
		ids = append(ids, in.ID)
	}
	var err error
	k.readBack, err = tx.Incidents(ctx, ids)
	return err
}

// TestPutIncidentReturnsStored: PutIncident returns the incident exactly
// as Incidents reads it back — new and updated, with and without a scope
// rule, entities and body, a verdict — so a keeper may remember it instead
// of reading it again (internal/incident/track).
func TestPutIncidentReturnsStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		at := time.Date(2025, 6, 4, 5, 6, 7, 891011121, time.FixedZone("KST", 9*3600))
		k := &putKeeper{ins: []Incident{
			{ID: "in-a", Founder: "al-1", Title: "t", Attack: "Forged tokens", Severity: event.SeverityCritical,
				State: IncidentOpen, Start: at, End: at.Add(time.Hour), AlertCount: 3,
				Entities: []event.EntityKey{{Kind: event.EntitySigningKey, ID: "k"}},
				Scope: &IncidentScope{Terms: []ScopeTerm{{Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k"},
					From: at, To: at.Add(time.Hour), Why: "forged"}}}, Body: []byte(`{"id":"in-a"}`)},
			{ID: "in-b", Founder: "al-2", State: IncidentContained, Verdict: VerdictTruePositive, VerdictBy: "x", Note: "n",
				VerdictAt: at, Start: at, End: at, Created: at.Add(-time.Hour)},
		}}
		s, err := Open(t.Context(), b.target(t), Options{Incidents: k})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		a := event.Alert{ID: "al-1", Time: at, Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k"}}
		for round := range 2 { // new rows, then updates of them
			if round == 1 {
				k.ins[0].AlertCount, k.ins[0].Scope, k.ins[0].Entities = 4, nil, nil
				k.ins[1].Created = time.Time{}
			}
			if err := s.SaveAlerts(t.Context(), []event.Alert{a}); err != nil {
				t.Fatal(err)
			}
			if len(k.readBack) != len(k.ins) {
				t.Fatalf("round %d: read back %d incidents, want %d", round, len(k.readBack), len(k.ins))
			}
			if diff := cmp.Diff(k.readBack, k.put); diff != "" {
				t.Errorf("round %d: PutIncident's answer differs from the row read back (-read +put):\n%s", round, diff)
			}
		}
	})
}
