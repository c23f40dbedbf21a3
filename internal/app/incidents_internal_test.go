package app

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/incident/track"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

func principalAlert(id string, at time.Time, p string, related ...event.EntityKey) event.Alert {
	subject := event.EntityKey{Kind: event.EntityPrincipal, ID: p}
	return event.Alert{ID: id, Time: at, Entity: subject, Severity: event.SeverityHigh, Score: 80, Title: "t",
		State: event.AlertOpen, Detector: "d", LastTime: at, FindingCount: 1,
		Findings: []event.Finding{{Detector: "d", Kind: "k", Entity: subject, Time: at, Score: 80,
			Severity: event.SeverityHigh, Evidence: []string{}, Related: related}}}
}

// Incident events — opened, grew (a merge included), state_changed — are
// written to the outbox in the transaction that makes them, once each
// however often the same alerts are saved, as kind incident for the
// receiver "incident"; with response off there are none.
func TestIncidentNotices(t *testing.T) {
	t0 := time.Date(2025, 6, 4, 5, 0, 0, 0, time.UTC)
	for _, mode := range []respond.Mode{respond.ModeDryRun, respond.ModeOff} {
		t.Run(string(mode), func(t *testing.T) {
			st, err := store.Open(t.Context(), t.TempDir(), store.Options{Incidents: track.New(track.Options{}),
				IncidentNotice: incidentNotice(mode)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			ctx := t.Context()
			a := principalAlert("al-a", t0, "e:1")
			b := principalAlert("al-b", t0.Add(time.Hour), "e:2")
			ab := principalAlert("al-ab", t0.Add(2*time.Hour), "e:3",
				event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}, event.EntityKey{Kind: event.EntityPrincipal, ID: "e:2"})
			for range 2 { // the second round saves the same alerts again
				for _, batch := range [][]event.Alert{{a}, {b}, {ab}} {
					if err := st.SaveAlerts(ctx, batch); err != nil {
						t.Fatal(err)
					}
				}
			}
			if _, err := st.SetIncidentVerdict(ctx, store.IncidentVerdict{IncidentID: incident.IDFor("al-a"), Verdict: store.VerdictTruePositive,
				By: "ana", At: t0.Add(3 * time.Hour)}); err != nil {
				t.Fatal(err)
			}
			acts, err := st.ListActions(ctx, store.ActionQuery{Kind: respond.KindIncident})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, act := range acts {
				var pl respond.Payload
				if err := json.Unmarshal(act.Payload, &pl); err != nil || pl.Incident == nil {
					t.Fatalf("payload %s: %v", act.Payload, err)
				}
				if act.Receiver != "incident" || act.State != store.ActionPlanned {
					t.Errorf("action %+v", act)
				}
				got = append(got, pl.Incident.Event+" "+act.Target)
			}
			slices.Sort(got)
			var want []string
			if mode != respond.ModeOff {
				ia, ib := incident.IDFor("al-a"), incident.IDFor("al-b")
				want = []string{"grew " + ia, "opened " + ia, "opened " + ib, "state_changed " + ia}
				slices.Sort(want)
			}
			if !slices.Equal(got, want) {
				t.Errorf("notices %q, want %q", got, want)
			}
		})
	}
}

// An incident's notices do not depend on how its alerts were batched (a
// restart re-batches them): the same alerts saved one by one, in threes,
// or at once write the same actions — ids and times — one "opened" and a
// "grew" per milestone of its alert count (2, 4, 8), each timed by the
// alert that reached it.
func TestIncidentNoticesIndependentOfBatching(t *testing.T) {
	t0 := time.Date(2025, 6, 4, 5, 0, 0, 0, time.UTC)
	key := event.EntityKey{Kind: event.EntitySigningKey, ID: "ghost"}
	var all []event.Alert
	for i := range 9 {
		all = append(all, principalAlert(fmt.Sprintf("al-%d", i), t0.Add(time.Duration(i)*time.Minute), fmt.Sprintf("e:%d", i), key))
	}
	id := incident.IDFor("al-0")
	want := []string{
		"opened " + id + " " + t0.Format(time.RFC3339),
		"grew " + id + " " + t0.Add(time.Minute).Format(time.RFC3339),
		"grew " + id + " " + t0.Add(3*time.Minute).Format(time.RFC3339),
		"grew " + id + " " + t0.Add(7*time.Minute).Format(time.RFC3339),
	}
	slices.Sort(want)
	var first []store.Action
	for _, batch := range []int{1, 3, 9} {
		t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
			st, err := store.Open(t.Context(), t.TempDir(), store.Options{Incidents: track.New(track.Options{}),
				IncidentNotice: incidentNotice(respond.ModeDryRun)})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			for i := 0; i < len(all); i += batch {
				if err := st.SaveAlerts(t.Context(), all[i:min(i+batch, len(all))]); err != nil {
					t.Fatal(err)
				}
			}
			acts, err := st.ListActions(t.Context(), store.ActionQuery{Kind: respond.KindIncident})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, act := range acts {
				var pl respond.Payload
				if err := json.Unmarshal(act.Payload, &pl); err != nil || pl.Incident == nil {
					t.Fatalf("payload %s: %v", act.Payload, err)
				}
				got = append(got, pl.Incident.Event+" "+act.Target+" "+act.CreatedAt.UTC().Format(time.RFC3339))
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("notices %q, want %q", got, want)
			}
			slices.SortFunc(acts, func(x, y store.Action) int { return strings.Compare(x.ID, y.ID) })
			if first == nil {
				first = acts
				return
			}
			for i := range min(len(acts), len(first)) {
				if acts[i].ID != first[i].ID {
					t.Errorf("action ids differ from batch=1's: %s, %s", acts[i].ID, first[i].ID)
				}
			}
		})
	}
}
