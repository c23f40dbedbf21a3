package track

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/scope/*.golden.json")

// world is a small company's reads: who read what, with which token, key
// and from where, and whether the read was the attacker's.
type world struct {
	evs      []event.Event
	attacker map[string]bool // records the attacker read
	owner    map[string]bool // records only legitimate users read
	nid      int
}

const prodKey = "auth-2025-06" // signs every customer's token

// read records a gateway read of n records of type customer, named
// prefix-0 …, by user with token (signed by key) from ip in AS asn.
func (w *world) read(at time.Time, attacker bool, user, token, key, ip string, asn uint32, records ...string) event.Event {
	w.nid++
	ev := event.Event{ID: fmt.Sprintf("ev-%d", w.nid), Time: at, Dataset: event.DatasetGateway, Action: "customer.read", Outcome: event.OutcomeSuccess,
		User: event.User{ID: user}, Token: event.Token{ID: token, KeyID: key},
		Source:  event.Source{IP: netip.MustParseAddr(ip), ASN: asn},
		Records: event.Records{Type: "customer", IDs: records, Fields: []string{"name", "phone"}}}
	w.evs = append(w.evs, ev)
	for _, r := range records {
		if attacker {
			w.attacker[r] = true
		} else {
			w.owner[r] = true
		}
	}
	return ev
}

// cite is the citation an alert's finding keeps of ev.
func cite(ev event.Event) event.Citation {
	return event.Citation{Ref: ev.ID, Success: ev.Outcome == event.OutcomeSuccess, Principal: ev.User.ID, Token: ev.Token.ID, Key: ev.Token.KeyID,
		Source: ev.Source.IP.String(), ASN: ev.Source.ASN}
}

func recs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// scopeCase is one incident kind: a world and the alerts of its attack.
type scopeCase struct {
	name  string
	build func(w *world) []event.Alert
}

var day0 = time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)

func scopeCases() []scopeCase {
	return []scopeCase{
		{name: "forged_key", build: func(w *world) []event.Alert {
			// A departed engineer kept the live production key and forges
			// tokens impersonating customers from a hosting server; the
			// customers (and everyone else) read with genuine tokens of
			// the same key.
			for i := range 20 {
				c := fmt.Sprintf("m:%d", i)
				w.read(day0.Add(time.Duration(i)*time.Minute), false, c, "tk-own-"+c, prodKey, "211.36.1.1", 4766, recs("own-"+c+"-", 5)...)
			}
			var alerts []event.Alert
			for i := range 3 {
				c := fmt.Sprintf("m:%d", i)
				ev := w.read(day0.Add(3*time.Hour+time.Duration(i)*time.Minute), true, c, fmt.Sprintf("tk-forged-%d", i), prodKey, "45.77.10.70", 20473,
					recs(fmt.Sprintf("stolen-%d-", i), 4)...)
				alerts = append(alerts, mk(ev.Time, ent(event.EntitySigningKey, prodKey), "token_provenance", "token_never_minted", event.SeverityCritical,
					[]event.Citation{cite(ev)}, ent(event.EntitySource, "45.77.10.70")))
			}
			return alerts
		}},
		{name: "hijacked_token", build: func(w *world) []event.Alert {
			// A customer's session token is replayed from abroad; the
			// customer keeps reading with it at home.
			w.read(day0.Add(8*time.Hour), false, "m:7", "tk-victim", prodKey, "211.36.1.7", 4766, recs("victim-own-", 6)...)
			ev := w.read(day0.Add(9*time.Hour), true, "m:7", "tk-victim", prodKey, "139.180.138.135", 20473, recs("thief-", 3)...)
			w.read(day0.Add(9*time.Hour+time.Minute), true, "m:7", "tk-victim", prodKey, "139.180.138.135", 20473, recs("thief-more-", 2)...)
			w.read(day0.Add(10*time.Hour), false, "m:7", "tk-victim", prodKey, "211.36.1.7", 4766, recs("victim-later-", 2)...)
			w.read(day0.Add(10*time.Hour), false, "m:8", "tk-other", prodKey, "211.36.1.8", 4766, recs("other-", 9)...)
			return []event.Alert{mk(ev.Time, ent(event.EntityToken, "tk-victim"), "token_binding", "token_binding_country", event.SeverityCritical,
				[]event.Citation{cite(ev)}, ent(event.EntitySource, "139.180.138.135"))}
		}},
		{name: "stolen_service_token", build: func(w *world) []event.Alert {
			// The recommendation service's secret gets tokens from a
			// foreign server that pulls customers in bulk; the service's
			// own jobs read all day from inside.
			for h := range 6 {
				w.read(day0.Add(time.Duration(h)*time.Hour), false, "s:recommendation", fmt.Sprintf("tk-job-%d", h), prodKey, "10.20.0.5", 0,
					recs(fmt.Sprintf("job-%d-", h), 10)...)
			}
			var cites []event.Citation
			for i := range 3 {
				ev := w.read(day0.Add(16*time.Hour+time.Duration(i)*time.Minute), true, "s:recommendation", "tk-attacker-1", prodKey, "51.68.1.1", 16276,
					recs(fmt.Sprintf("bulk-%d-", i), 20)...)
				cites = append(cites, cite(ev))
			}
			return []event.Alert{mk(day0.Add(16*time.Hour+2*time.Minute), ent(event.EntityPrincipal, "s:recommendation"), "record_volume",
				"record_enumeration", event.SeverityCritical, cites)}
		}},
		{name: "insider", build: func(w *world) []event.Alert {
			// An employee exports customers from the office, where a
			// colleague works too; the employee's reads of three days
			// before are ordinary work.
			w.read(day0.Add(-72*time.Hour), false, "e:7", "tk-e7-old", prodKey, "112.148.1.1", 4766, recs("e7-work-", 8)...)
			w.read(day0.Add(9*time.Hour), false, "e:8", "tk-e8", prodKey, "112.148.1.1", 4766, recs("e8-work-", 8)...)
			var cites []event.Citation
			for i := range 4 {
				ev := w.read(day0.Add(11*time.Hour+time.Duration(i)*time.Minute), true, "e:7", "tk-e7", prodKey, "112.148.1.1", 4766,
					recs(fmt.Sprintf("export-%d-", i), 25)...)
				cites = append(cites, cite(ev))
			}
			return []event.Alert{mk(day0.Add(11*time.Hour+3*time.Minute), ent(event.EntityPrincipal, "e:7"), "record_volume", "record_volume",
				event.SeverityCritical, cites)}
		}},
		{name: "stuffing_campaign", build: func(w *world) []event.Alert {
			// Bots on a residential carrier try passwords; one gets into
			// m:5 and reads the account. m:5 is a customer of the same
			// carrier and reads the account from home, as do others.
			w.read(day0.Add(7*time.Hour), false, "m:5", "tk-m5", prodKey, "73.1.1.5", 7922, recs("m5-own-", 4)...)
			w.read(day0.Add(7*time.Hour), false, "m:6", "tk-m6", prodKey, "73.1.1.6", 7922, recs("m6-own-", 4)...)
			var alerts []event.Alert
			var cites []event.Citation
			for i := range 3 {
				ip := fmt.Sprintf("73.9.9.%d", i+1)
				fail := event.Citation{Ref: fmt.Sprintf("login-%d", i), Principal: fmt.Sprintf("m:%d", 100+i), Source: ip, ASN: 7922, UserAgent: "Mozilla/5.0 Chrome/120.0"}
				cites = append(cites, fail)
				alerts = append(alerts, mk(day0.Add(12*time.Hour+time.Duration(i)*time.Minute), ent(event.EntitySource, ip), "source_fanout",
					"login_failure_fanout", event.SeverityCritical, []event.Citation{fail}))
			}
			w.read(day0.Add(12*time.Hour+5*time.Minute), true, "m:5", "tk-bot", prodKey, "73.9.9.2", 7922, recs("m5-taken-", 3)...)
			alerts = append(alerts, mk(day0.Add(12*time.Hour+10*time.Minute), ent(incidentNetwork, "AS7922"), "login_campaign",
				"login_failure_campaign", event.SeverityCritical, cites, ent(event.EntitySource, "73.9.9.1"), ent(event.EntitySource, "73.9.9.2")))
			return alerts
		}},
	}
}

// recordWorld runs w's reads through a real engine and ledger into st.
func recordWorld(t *testing.T, st *store.Store, w *world) {
	t.Helper()
	ctx := context.Background()
	l, err := ledger.Open(ctx, st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- l.Run(ctx) }()
	eng, err := engine.New(engine.Options{Detectors: l.Detectors(), Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range eng.Output() {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	evs := slices.Clone(w.evs)
	slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
	if err := eng.Submit(ctx, engine.Batch{Events: evs}); err != nil {
		t.Fatal(err)
	}
	eng.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}

// scopeGolden is what a case's golden file holds: the scope's terms as
// the answer says them, what it leaves out, and its records.
type scopeGolden struct {
	Terms   []string             `json:"terms"`
	LeftOut []store.ScopeLeftOut `json:"left_out"`
	Records []string             `json:"records"`
}

// TestIncidentScopeIsTheAttackersReads: for each kind of incident, the
// keeper's scope rule, answered by the real ledger, is exactly the
// records the attacker read — never the victim's, the stolen
// credential's owner's or the signing key's other customers' — and
// matches its golden file. The old rule (the union over every key and
// token in the graph and every alert's subject, over Start…End) is
// checked to have counted the others' reads.
func TestIncidentScopeIsTheAttackersReads(t *testing.T) {
	for _, tc := range scopeCases() {
		t.Run(tc.name, func(t *testing.T) {
			st, err := store.Open(t.Context(), t.TempDir(), store.Options{Incidents: New(Options{})})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			w := &world{attacker: map[string]bool{}, owner: map[string]bool{}}
			alerts := tc.build(w)
			recordWorld(t, st, w)
			if err := st.SaveAlerts(t.Context(), alerts); err != nil {
				t.Fatal(err)
			}
			ins, err := st.ListIncidents(t.Context(), store.IncidentQuery{Limit: store.MaxListLimit})
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) != 1 {
				t.Fatalf("%d incidents, want 1", len(ins))
			}
			in, err := st.GetIncident(t.Context(), ins[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			res, err := ledger.IncidentScope(t.Context(), st, in)
			if err != nil {
				t.Fatal(err)
			}
			var got scopeGolden
			for _, term := range res.Terms {
				got.Terms = append(got.Terms, termText(term))
			}
			got.LeftOut = res.LeftOut
			if err := res.Each(t.Context(), func(_, id string) error {
				got.Records = append(got.Records, id)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			slices.Sort(got.Records)
			want := make([]string, 0, len(w.attacker))
			for r := range w.attacker {
				want = append(want, r)
			}
			slices.Sort(want)
			if diff := cmp.Diff(want, got.Records); diff != "" {
				t.Errorf("scope is not the attacker's reads (-attacker +scope):\n%s", diff)
			}
			for _, r := range got.Records {
				if w.owner[r] && !w.attacker[r] {
					t.Errorf("scope holds %s, read only by its owner", r)
				}
			}
			golden(t, filepath.Join("testdata", "scope", tc.name+".golden.json"), got)

			// The old rule: every subject and every key and token of the
			// graph, over the incident's days.
			var body struct {
				Graph struct {
					Nodes []struct {
						Entity event.EntityKey `json:"entity"`
						Alerts int             `json:"alerts"`
						Hub    bool            `json:"hub"`
					} `json:"nodes"`
				} `json:"graph"`
			}
			if err := json.Unmarshal(in.Body, &body); err != nil {
				t.Fatal(err)
			}
			old := in
			old.Scope, old.Entities = nil, nil
			for _, n := range body.Graph.Nodes {
				if !n.Hub && (n.Alerts > 0 || n.Entity.Kind == event.EntitySigningKey || n.Entity.Kind == event.EntityToken) {
					old.Entities = append(old.Entities, n.Entity)
				}
			}
			oldRes, err := ledger.IncidentScope(t.Context(), st, old)
			if err != nil {
				t.Fatal(err)
			}
			if oldRes.Total <= int64(len(want)) {
				t.Errorf("the old rule counts %d records, the attacker read %d: the case does not tell the rules apart", oldRes.Total, len(want))
			}
			t.Logf("old rule: %d records; the attacker's: %d", oldRes.Total, len(want))
		})
	}
}

// termText is a term as the golden file keeps it.
func termText(t ledger.Term) string {
	s := string(t.Dim) + " " + strings.Join(t.Values, ",") + " " + t.FromDay + ".." + t.ToDay
	if len(t.Within) > 0 {
		var ws []string
		for _, w := range t.Within {
			ws = append(ws, termText(w))
		}
		s += " within [" + strings.Join(ws, "; ") + "]"
	}
	return s
}

func golden(t *testing.T, path string, got scopeGolden) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), string(b)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}
