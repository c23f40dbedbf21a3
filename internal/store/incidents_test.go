package store

import (
	"context"
	"reflect"
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

// TestPutIncidentReturnsStoredExactly: PutIncident's answer is the row
// read back value for value (reflect.DeepEqual: time locations and
// monotonic readings, nil against empty lists), though it does not parse
// the entities column again — for the scopes whose JSON round trip is not
// the identity: times in other zones and with a monotonic reading, empty
// Within and LeftOut lists (left out of the JSON), text that is not
// UTF-8, HTML characters.
func TestPutIncidentReturnsStoredExactly(t *testing.T) {
	// The scope types as roundTripScope copies them: a field added to one
	// must be added there too.
	for typ, n := range map[reflect.Type]int{reflect.TypeFor[IncidentScope](): 2, reflect.TypeFor[ScopeTerm](): 5,
		reflect.TypeFor[ScopeLeftOut](): 2, reflect.TypeFor[event.EntityKey](): 2} {
		if typ.NumField() != n {
			t.Fatalf("%v has %d fields, roundTripScope knows %d: update it and this test", typ, typ.NumField(), n)
		}
	}
	kst := time.Date(2025, 6, 4, 5, 6, 7, 891011121, time.FixedZone("KST", 9*3600))
	utc := kst.UTC()
	key := event.EntityKey{Kind: event.EntitySigningKey, ID: "k"}
	term := func(e event.EntityKey, from, to time.Time, within []ScopeTerm) ScopeTerm {
		return ScopeTerm{Entity: e, From: from, To: to, Within: within, Why: "w <&> \u2028"}
	}
	for name, sc := range map[string]*IncidentScope{
		"utc": {Terms: []ScopeTerm{term(key, utc, utc.Add(time.Hour), []ScopeTerm{term(key, utc, utc, nil)})},
			LeftOut: []ScopeLeftOut{{Entity: key, Why: "x"}}},
		"zones":       {Terms: []ScopeTerm{term(key, kst, time.Now(), nil), term(key, utc.In(time.FixedZone("UTC", 0)), time.Time{}, nil)}},
		"empty lists": {Terms: []ScopeTerm{term(key, utc, utc, []ScopeTerm{})}, LeftOut: []ScopeLeftOut{}},
		"no terms":    {Terms: []ScopeTerm{}},
		"nil terms":   {},
		"not utf-8":   {Terms: []ScopeTerm{term(event.EntityKey{Kind: event.EntityToken, ID: "t\xff"}, utc, utc, nil)}},
		"why not utf-8": {Terms: []ScopeTerm{{Entity: key, From: utc, To: utc,
			Within: []ScopeTerm{{Entity: key, Why: "\xfe"}}}}},
		"entities not utf-8": nil,
	} {
		t.Run(name, func(t *testing.T) {
			in := Incident{ID: "in-a", Founder: "al-1", State: IncidentOpen, Start: kst, End: utc, Scope: sc,
				Entities: []event.EntityKey{key}, Body: []byte(`{"id":"in-a"}`)}
			if name == "entities not utf-8" {
				in.Entities = append(in.Entities, event.EntityKey{Kind: event.EntitySource, ID: "\xc3("})
			}
			k := &putKeeper{ins: []Incident{in}}
			s, err := Open(t.Context(), t.TempDir(), Options{Incidents: k})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.SaveAlerts(t.Context(), []event.Alert{{ID: "al-1", Time: utc, Entity: key}}); err != nil {
				t.Fatal(err)
			}
			if len(k.put) != 1 || len(k.readBack) != 1 {
				t.Fatalf("put %d, read back %d incidents", len(k.put), len(k.readBack))
			}
			put, read := k.put[0], k.readBack[0]
			if !reflect.DeepEqual(put, read) {
				t.Errorf("PutIncident's answer is not the row read back:\nput  %#v\nread %#v\nscope put  %#v\nscope read %#v",
					put, read, put.Scope, read.Scope)
			}
		})
	}
}
