package eval_test

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
)

func TestScoreIncidents(t *testing.T) {
	tr := synthTruth()
	alerts := []event.Alert{
		mkAlert("x1", 10, "volume", principal("x"), "a1"),
		mkAlert("x2", 70, "volume", principal("x"), "a2"),
		mkAlert("x0", -500, "volume", principal("x")), // before scenario a began: a precursor
		mkAlert("z1", 110, "fanout", source("10.0.0.2"), "b1"),
		mkAlert("z2", 210, "fanout", source("10.0.0.2"), "b2"),
		mkAlert("bk", 300, "volume", principal("svc-backup")),
		mkAlert("o1", 400, "volume", principal("y")),
	}
	inc := func(id string, alertIDs ...string) incident.Incident {
		return incident.Incident{ID: id, AlertIDs: alertIDs}
	}
	cases := []struct {
		name    string
		incs    []incident.Incident
		perScen []int // incidents of scenarios a, b
		want    eval.IncidentsScore
	}{
		{
			name:    "one incident per attack",
			incs:    []incident.Incident{inc("i1", "x0", "x1", "x2"), inc("i2", "z1", "z2"), inc("i3", "bk"), inc("i4", "o1")},
			perScen: []int{1, 1},
			want:    eval.IncidentsScore{Incidents: 4, Attack: 2, Benign: 2, Precursors: 1},
		},
		{
			name:    "an attack split in two",
			incs:    []incident.Incident{inc("i1", "x1"), inc("i2", "x2"), inc("i3", "z1", "z2")},
			perScen: []int{2, 1},
			want:    eval.IncidentsScore{Incidents: 3, Attack: 3},
		},
		{
			name:    "two scenarios mixed, and an attack with a hard-benign alert",
			incs:    []incident.Incident{inc("i1", "x1", "z1"), inc("i2", "z2", "bk", "o1")},
			perScen: []int{1, 2},
			want:    eval.IncidentsScore{Incidents: 2, Attack: 2, MixedScenarios: 1, WithBenign: 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sc := eval.Score(tr, synthObserver(tr), alerts)
			got := eval.ScoreIncidents(&sc, tr, alerts, tc.incs)
			mixed := got.Mixed
			got.Mixed, tc.want.Mixed = nil, nil
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("score %+v, want %+v", got, tc.want)
			}
			if len(mixed) != tc.want.MixedScenarios+tc.want.WithBenign-overlap(mixed) {
				t.Errorf("mixed list %+v", mixed)
			}
			for i, n := range tc.perScen {
				if sc.Scenarios[i].Incidents != n || len(sc.Scenarios[i].IncidentIDs) != n {
					t.Errorf("scenario %s: %d incidents %v, want %d", sc.Scenarios[i].Name, sc.Scenarios[i].Incidents, sc.Scenarios[i].IncidentIDs, n)
				}
			}
			sc.Incidents = &got
			var b bytes.Buffer
			if err := sc.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "INCIDENTS") || !strings.Contains(b.String(), "Incidents: ") {
				t.Errorf("text lacks incidents:\n%s", b.String())
			}
		})
	}
}

// overlap counts mixed incidents that are both (two scenarios and benign
// alerts), listed once.
func overlap(m []eval.MixedIncident) int {
	n := 0
	for _, x := range m {
		if len(x.Scenarios) > 1 && x.BenignAlerts > 0 {
			n++
		}
	}
	return n
}
