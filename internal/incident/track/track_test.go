package track

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/store"
)

var t0 = time.Date(2025, 6, 4, 5, 0, 0, 0, time.UTC)

func ent(kind event.EntityKind, id string) event.EntityKey {
	return event.EntityKey{Kind: kind, ID: id}
}

// mk makes an alert of one finding citing cites.
func mk(at time.Time, subject event.EntityKey, detector, kind string, sev event.Severity, cites []event.Citation, related ...event.EntityKey) event.Alert {
	refs := make([]string, len(cites))
	for i, c := range cites {
		refs[i] = c.Ref
	}
	f := event.Finding{Detector: detector, Kind: kind, Entity: subject, Time: at, Score: 80, Severity: sev,
		Evidence: refs, Related: related, Cited: cites}
	id := fmt.Sprintf("al-%s-%s-%d", subject, detector, at.UnixNano())
	return event.Alert{ID: id, Time: at, Entity: subject, Severity: sev, Score: 80, Title: kind, State: event.AlertOpen,
		Detector: detector, LastTime: at, FindingCount: 1, Findings: []event.Finding{f}}
}

// ghostKey: a key alert naming a source, then alerts about sources whose
// cited requests carry tokens the key signed (joined through the key).
func ghostKey(prefix string, start time.Time, n int) []event.Alert {
	key := ent(event.EntitySigningKey, prefix+"key")
	var out []event.Alert
	for i := range n {
		at := start.Add(time.Duration(i) * 7 * time.Minute)
		src := fmt.Sprintf("45.77.%d.%d", i%40, i%7)
		c := event.Citation{Ref: fmt.Sprintf("%sev-%d", prefix, i), Success: true, Principal: fmt.Sprintf("m:%d", 1000+i),
			Token: fmt.Sprintf("%stk-%d", prefix, i), Key: key.ID, Source: src, ASN: 20473, UserAgent: "python-requests/2.31.0"}
		if i%10 == 0 {
			out = append(out, mk(at, key, "token_provenance", "token_never_minted", event.SeverityCritical, []event.Citation{c}, ent(event.EntitySource, src)))
			continue
		}
		out = append(out, mk(at, ent(event.EntitySource, src), "principal_geo", "hosting_network", event.SeverityHigh, []event.Citation{c}))
	}
	return out
}

// stuffing: bots failing to log in, one UA family, rotating ASes.
func stuffing(prefix string, start time.Time, bots int, asns []uint32) []event.Alert {
	var out []event.Alert
	for i := range bots {
		at := start.Add(time.Duration(i) * 20 * time.Second)
		src := fmt.Sprintf("%s.%d.%d", prefix, i/250, i%250)
		c := event.Citation{Ref: fmt.Sprintf("%s-login-%d", prefix, i), Principal: fmt.Sprintf("m:%d", 50000+i), Source: src,
			ASN: asns[i%len(asns)], UserAgent: fmt.Sprintf("Mozilla/5.0 Chrome/%d.0.0.0", 118+i%4)}
		out = append(out, mk(at, ent(event.EntitySource, src), "source_fanout", "login_failure_fanout", event.SeverityCritical, []event.Citation{c}))
	}
	return out
}

// hijacks: tokens stolen from different customers, each used a day
// apart from one hosting AS (a stolen-token campaign: the alerts share no
// entity, only the AS their token_binding_hosting findings cite).
func hijacks(prefix string, start time.Time, n int) []event.Alert {
	var out []event.Alert
	for i := range n {
		at := start.Add(time.Duration(i) * 24 * time.Hour)
		tok := fmt.Sprintf("%stk-%d", prefix, i)
		c := event.Citation{Ref: fmt.Sprintf("%s-use-%d", prefix, i), Success: true, Principal: fmt.Sprintf("m:%d", 70000+i),
			Token: tok, Source: fmt.Sprintf("%s.%d", prefix, i), ASN: 14061, UserAgent: "Mozilla/5.0 Chrome/120.0.0.0"}
		out = append(out, mk(at, ent(event.EntityToken, tok), "token_binding", "token_binding_hosting", event.SeverityHigh, []event.Citation{c}))
	}
	return out
}

// abroadHijacks: one thief replaying stolen tokens from data centres of
// rotating providers in one foreign country, every other day: each alert
// has a token_binding_country and a token_binding_hosting finding citing
// the replay (joined through the country, which only the stored citation
// carries).
func abroadHijacks(prefix string, start time.Time, n int) []event.Alert {
	var out []event.Alert
	for i := range n {
		at := start.Add(time.Duration(i) * 48 * time.Hour)
		tok := fmt.Sprintf("%stk-%d", prefix, i)
		c := event.Citation{Ref: fmt.Sprintf("%s-replay-%d", prefix, i), Success: true, Principal: fmt.Sprintf("m:%d", 80000+i),
			Token: tok, Source: fmt.Sprintf("%s.%d", prefix, i), ASN: []uint32{16276, 24940, 63949}[i%3], Country: "SG",
			UserAgent: "Mozilla/5.0 Chrome/120.0.0.0"}
		a := mk(at, ent(event.EntityToken, tok), "token_binding", "token_binding_country", event.SeverityHigh, []event.Citation{c})
		f := a.Findings[0]
		f.Kind, f.Cited = "token_binding_hosting", nil
		a.Findings = append(a.Findings, f)
		out = append(out, a)
	}
	return out
}

// relayHijacks: a thief whose provider in one country is joinable only
// through its campaign's activity on another: day 0 from AS 47583 in HK,
// day 4 from AS 51167 in HK (joined through HK), day 9 from AS 47583
// again, now in TW (joined through the AS: the campaign was active five
// days before, though that AS was last used nine days before). Saved
// late-first, the day-4 alert shares no key with the day-9 one, yet
// decides that it joins.
func relayHijacks(prefix string, start time.Time) []event.Alert {
	var out []event.Alert
	for i, u := range []struct {
		day     int
		asn     uint32
		country string
	}{{0, 47583, "HK"}, {4, 51167, "HK"}, {9, 47583, "TW"}} {
		at := start.Add(time.Duration(u.day) * 24 * time.Hour)
		tok := fmt.Sprintf("%stk-%d", prefix, i)
		c := event.Citation{Ref: fmt.Sprintf("%s-replay-%d", prefix, i), Success: true, Principal: fmt.Sprintf("m:%d", 90000+i),
			Token: tok, Source: fmt.Sprintf("%s.%d", prefix, i), ASN: u.asn, Country: u.country, UserAgent: "Mozilla/5.0 Chrome/120.0.0.0"}
		a := mk(at, ent(event.EntityToken, tok), "token_binding", "token_binding_country", event.SeverityHigh, []event.Citation{c})
		f := a.Findings[0]
		f.Kind, f.Cited = "token_binding_hosting", nil
		a.Findings = append(a.Findings, f)
		out = append(out, a)
	}
	return out
}

// insider: a principal's slow reads, an alert a day.
func insider(id string, start time.Time, days int) []event.Alert {
	var out []event.Alert
	for d := range days {
		out = append(out, mk(start.Add(time.Duration(d)*24*time.Hour), ent(event.EntityPrincipal, id), "volume", "slow_exfiltration", event.SeverityHigh, nil))
	}
	return out
}

// backend is a store the tests run against.
type backend struct {
	name   string
	target func(t *testing.T) string
}

func backends(t *testing.T, fn func(t *testing.T, b backend)) {
	for _, b := range []backend{
		{"sqlite", func(t *testing.T) string { return t.TempDir() }},
		{"postgres", postgresSchema},
	} {
		t.Run(b.name, func(t *testing.T) { fn(t, b) })
	}
}

// postgresSchema returns HAECHI_TEST_POSTGRES with search_path set to a
// schema of its own, dropped when t ends; it skips t when the variable is
// unset and fails it when the server is unreachable (as the store's and
// the command line's PostgreSQL tests do; docs/store.md).
func postgresSchema(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("HAECHI_TEST_POSTGRES")
	if dsn == "" {
		t.Skip("HAECHI_TEST_POSTGRES not set: skipping the PostgreSQL store (set it to a postgres:// URL; see docs/store.md)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("HAECHI_TEST_POSTGRES is set but PostgreSQL is unreachable: %v", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	schema := "haechi_track_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	_ = conn.Close(ctx)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func open(t *testing.T, target string) *store.Store {
	t.Helper()
	s, err := store.Open(t.Context(), target, store.Options{Incidents: New(Options{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// want groups all alerts at once, with facts from their citations.
func want(alerts []event.Alert) map[string][]string {
	fx := &facts{events: map[string]incident.EventFacts{}, sources: map[string]int{}}
	principals := map[string]map[string]bool{}
	for _, a := range alerts {
		for _, f := range a.Findings {
			for _, c := range f.Cited {
				fx.events[c.Ref] = incident.EventFacts{Success: c.Success, Principal: c.Principal, Token: c.Token, Key: c.Key,
					Source: c.Source, ASN: c.ASN, UserAgent: c.UserAgent, Country: c.Country}
				if c.Success && c.Principal != "" && c.Source != "" {
					if principals[c.Source] == nil {
						principals[c.Source] = map[string]bool{}
					}
					principals[c.Source][c.Principal] = true
				}
			}
		}
	}
	for ip, ps := range principals {
		fx.sources[ip] = len(ps)
	}
	out := map[string][]string{}
	for _, in := range incident.Group(alerts, fx, incident.Options{}) {
		out[in.ID] = in.AlertIDs
	}
	return out
}

// stored reads every stored incident's alerts.
func stored(t *testing.T, s *store.Store) map[string][]string {
	t.Helper()
	ins, err := s.ListIncidents(t.Context(), store.IncidentQuery{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, in := range ins {
		full, err := s.GetIncident(t.Context(), in.ID)
		if err != nil {
			t.Fatal(err)
		}
		var body incident.Incident
		if err := json.Unmarshal(full.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.ID != in.ID || len(body.AlertIDs) != in.AlertCount {
			t.Errorf("incident %s: body id %s, %d alerts; row says %d", in.ID, body.ID, len(body.AlertIDs), in.AlertCount)
		}
		out[in.ID] = body.AlertIDs
		for _, a := range body.AlertIDs {
			if got, err := s.IncidentOfAlert(t.Context(), a); err != nil || got != in.ID {
				t.Errorf("IncidentOfAlert(%s) = %q, %v; want %s", a, got, err, in.ID)
			}
		}
	}
	return out
}

func scenario() []event.Alert {
	var all []event.Alert
	all = append(all, ghostKey("", t0, 60)...)
	all = append(all, stuffing("10.1", t0.Add(2*time.Hour), 40, []uint32{7922, 45899})...)
	all = append(all, stuffing("10.2", t0.Add(30*time.Hour), 20, []uint32{7922})...)
	all = append(all, insider("e:1016", t0, 5)...)
	all = append(all, hijacks("203.0.113", t0.Add(5*time.Hour), 4)...)
	all = append(all, abroadHijacks("198.51.100", t0.Add(3*time.Hour), 4)...)
	all = append(all, relayHijacks("192.0.2", t0.Add(4*time.Hour))...)
	return all
}

// TestKeeperEqualsGroup: alerts saved in batches of any size and order
// (late alerts included) give the incidents — ids and alerts — that
// incident.Group gives over all of them at once, on both stores.
func TestKeeperEqualsGroup(t *testing.T) {
	all := scenario()
	wantInc := want(all)
	if len(wantInc) != 7 {
		t.Fatalf("the scenario groups into %d incidents, want 7", len(wantInc))
	}
	backends(t, func(t *testing.T, b backend) {
		for _, batch := range []int{1, 7, 64, len(all)} {
			t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
				s := open(t, b.target(t))
				// A fixed shuffle: later alerts often come first.
				order := slices.Clone(all)
				r := newRand(uint64(batch))
				for i := len(order) - 1; i > 0; i-- {
					j := int(r() % uint64(i+1))
					order[i], order[j] = order[j], order[i]
				}
				for i := 0; i < len(order); i += batch {
					if err := s.SaveAlerts(t.Context(), order[i:min(i+batch, len(order))]); err != nil {
						t.Fatal(err)
					}
				}
				if diff := cmp.Diff(wantInc, stored(t, s)); diff != "" {
					t.Errorf("stored incidents differ from Group (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// newRand is a small deterministic generator (splitmix64).
func newRand(seed uint64) func() uint64 {
	return func() uint64 {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		return z ^ (z >> 31)
	}
}

// TestMergeKeepsOlderID: an alert bridging two stored incidents merges
// them; the older incident's ID, state and verdict are kept and the other
// ID resolves to it.
func TestMergeKeepsOlderID(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		s := open(t, b.target(t))
		ctx := t.Context()
		p, q := ent(event.EntityPrincipal, "e:1"), ent(event.EntityPrincipal, "e:2")
		a1 := mk(t0, p, "volume", "record_volume", event.SeverityHigh, nil)
		b1 := mk(t0.Add(time.Hour), q, "volume", "record_volume", event.SeverityMedium, nil)
		if err := s.SaveAlerts(ctx, []event.Alert{a1}); err != nil {
			t.Fatal(err)
		}
		if err := s.SaveAlerts(ctx, []event.Alert{b1}); err != nil {
			t.Fatal(err)
		}
		older, newer := incident.IDFor(a1.ID), incident.IDFor(b1.ID)
		if got := stored(t, s); len(got) != 2 || got[older] == nil || got[newer] == nil {
			t.Fatalf("before the bridge: %v", got)
		}
		if _, err := s.SetIncidentVerdict(ctx, store.IncidentVerdict{IncidentID: older, State: store.IncidentContained,
			Verdict: store.VerdictTruePositive, By: "ana", At: t0}); err != nil {
			t.Fatal(err)
		}
		// A token used by both principals: a finding about the token names both.
		bridge := mk(t0.Add(2*time.Hour), ent(event.EntityToken, "tk-1"), "token_binding", "token_multi_location", event.SeverityCritical, nil, p, q)
		if err := s.SaveAlerts(ctx, []event.Alert{bridge}); err != nil {
			t.Fatal(err)
		}
		got := stored(t, s)
		wantIDs := map[string][]string{older: {a1.ID, b1.ID, bridge.ID}}
		if diff := cmp.Diff(wantIDs, got); diff != "" {
			t.Fatalf("after the bridge (-want +got):\n%s", diff)
		}
		in, err := s.GetIncident(ctx, newer)
		if err != nil || in.ID != older {
			t.Fatalf("GetIncident(merged id %s) = %s, %v; want %s", newer, in.ID, err, older)
		}
		if in.State != store.IncidentContained || in.Verdict != store.VerdictTruePositive || in.Severity != event.SeverityCritical {
			t.Errorf("merged incident: state %q verdict %q severity %v; want contained, true_positive, critical", in.State, in.Verdict, in.Severity)
		}
		if _, err := s.GetIncident(ctx, "in-0000000000000000"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("GetIncident(unknown) = %v, want ErrNotFound", err)
		}
	})
}

// TestWithdrawnAlertLeaves: a withdrawn alert leaves its incident; an
// incident left without alerts is gone.
func TestWithdrawnAlertLeaves(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		s := open(t, b.target(t))
		ctx := t.Context()
		alerts := insider("e:7", t0, 3)
		lone := mk(t0, ent(event.EntityPrincipal, "e:8"), "volume", "record_volume", event.SeverityHigh, nil)
		if err := s.SaveAlerts(ctx, append(slices.Clone(alerts), lone)); err != nil {
			t.Fatal(err)
		}
		w := alerts[0]
		w.State = event.AlertWithdrawn
		lw := lone
		lw.State = event.AlertWithdrawn
		if err := s.SaveAlerts(ctx, []event.Alert{w, lw}); err != nil {
			t.Fatal(err)
		}
		// The first alert founded the incident; its successor refounds it.
		got := stored(t, s)
		wantIDs := map[string][]string{incident.IDFor(alerts[1].ID): {alerts[1].ID, alerts[2].ID}}
		if diff := cmp.Diff(wantIDs, got); diff != "" {
			t.Fatalf("(-want +got):\n%s", diff)
		}
		if in, err := s.GetIncident(ctx, incident.IDFor(alerts[0].ID)); err != nil || in.ID != incident.IDFor(alerts[1].ID) {
			t.Errorf("the refounded incident's old id resolves to %q, %v", in.ID, err)
		}
		if _, err := s.GetIncident(ctx, incident.IDFor(lone.ID)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an incident without alerts: %v, want ErrNotFound", err)
		}
	})
}

// TestConcurrentWorkers: several stores sharing one database (cluster
// mode's workers) saving alerts at once give the incidents Group gives.
func TestConcurrentWorkers(t *testing.T) {
	target := postgresSchema(t)
	all := scenario()
	const workers = 4
	stores := make([]*store.Store, workers)
	for i := range stores {
		stores[i] = open(t, target)
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w * 3; i < len(all); i += workers * 3 {
				if err := stores[w].SaveAlerts(context.Background(), all[i:min(i+3, len(all))]); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(all), stored(t, stores[0])); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestCitedKeyJoins: an alert whose only link to a stored incident is a
// key it cites (a request signed by a key an earlier alert accuses) joins
// it, whichever is saved first; a key it cites that no alert accuses (the
// production key) joins nothing.
func TestCitedKeyJoins(t *testing.T) {
	key := ent(event.EntitySigningKey, "ghost")
	keyAlert := mk(t0, key, "token_provenance", "token_never_minted", event.SeverityCritical, nil)
	cite := func(ref, src, k string) []event.Citation {
		return []event.Citation{{Ref: ref, Success: true, Principal: "m:" + ref, Token: "tk-" + ref, Key: k, Source: src}}
	}
	forged := mk(t0.Add(3*time.Hour), ent(event.EntitySource, "45.77.1.1"), "principal_geo", "hosting_network", event.SeverityHigh,
		cite("r1", "45.77.1.1", "ghost"))
	ordinary := mk(t0.Add(4*time.Hour), ent(event.EntitySource, "45.77.9.9"), "principal_geo", "hosting_network", event.SeverityHigh,
		cite("r2", "45.77.9.9", "prod"))
	for name, order := range map[string][][]event.Alert{
		"key first":    {{keyAlert}, {forged}, {ordinary}},
		"forged first": {{forged}, {ordinary}, {keyAlert}},
	} {
		t.Run(name, func(t *testing.T) {
			s := open(t, t.TempDir())
			for _, batch := range order {
				if err := s.SaveAlerts(t.Context(), batch); err != nil {
					t.Fatal(err)
				}
			}
			wantInc := map[string][]string{
				incident.IDFor(keyAlert.ID): {keyAlert.ID, forged.ID},
				incident.IDFor(ordinary.ID): {ordinary.ID},
			}
			if diff := cmp.Diff(wantInc, stored(t, s)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestSharedSourceSplits: two alerts joined only through the address
// they name split apart once later citations show more than
// SharedSource principals acting from it (a CGNAT gateway), though the
// alert bringing those citations names neither them nor the address —
// as Group over all the alerts splits them.
func TestSharedSourceSplits(t *testing.T) {
	gw := ent(event.EntitySource, "100.64.0.1")
	a := mk(t0, ent(event.EntityPrincipal, "e:1"), "volume", "record_volume", event.SeverityHigh, nil, gw)
	b := mk(t0.Add(time.Hour), ent(event.EntityPrincipal, "e:2"), "volume", "record_volume", event.SeverityHigh, nil, gw)
	var crowd []event.Citation
	for i := range incident.DefaultSharedSource {
		crowd = append(crowd, event.Citation{Ref: fmt.Sprintf("cgnat-%d", i), Success: true, Principal: fmt.Sprintf("m:%d", i), Source: gw.ID})
	}
	// An alert about another address citing the crowd's requests (a
	// detector's baseline evidence).
	c := mk(t0.Add(2*time.Hour), ent(event.EntitySource, "198.51.100.7"), "source_fanout", "source_fanout", event.SeverityMedium, crowd)
	all := []event.Alert{a, b, c}
	wantInc := want(all)
	if len(wantInc) != 3 {
		t.Fatalf("Group gives %d incidents, want 3 (the gateway a hub)", len(wantInc))
	}
	backends(t, func(t *testing.T, bk backend) {
		s := open(t, bk.target(t))
		for _, batch := range [][]event.Alert{{a, b}, {c}} {
			if err := s.SaveAlerts(t.Context(), batch); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(wantInc, stored(t, s)); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
}

// TestNoticesOnce: saved in batches of any size and order, the scenario
// announces each incident ID "opened" at most once and each of its
// milestones at most once (Change) — the keeper knows which incident
// every alert of a batch's neighbourhood was in, the alerts reached
// through a stolen-token campaign's keys included.
func TestNoticesOnce(t *testing.T) {
	all := scenario()
	backends(t, func(t *testing.T, b backend) {
		for _, batch := range []int{1, 7, 64, len(all)} {
			t.Run(fmt.Sprintf("batch=%d", batch), func(t *testing.T) {
				var mu sync.Mutex
				seen := map[string]int{}
				notice := func(kind string, in store.Incident, detail any) (*store.Action, error) {
					c, ok := detail.(Change)
					if !ok || c.Kind != kind {
						return nil, fmt.Errorf("notice %s of %s: detail %T %+v", kind, in.ID, detail, detail)
					}
					mu.Lock()
					seen[in.ID+" "+c.Key()]++
					mu.Unlock()
					return nil, nil
				}
				s, err := store.Open(t.Context(), b.target(t), store.Options{Incidents: New(Options{}), IncidentNotice: notice})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				order := slices.Clone(all)
				r := newRand(uint64(batch) + 1)
				for i := len(order) - 1; i > 0; i-- {
					j := int(r() % uint64(i+1))
					order[i], order[j] = order[j], order[i]
				}
				for i := 0; i < len(order); i += batch {
					if err := s.SaveAlerts(t.Context(), order[i:min(i+batch, len(order))]); err != nil {
						t.Fatal(err)
					}
				}
				if len(seen) == 0 {
					t.Fatal("no notices")
				}
				for k, n := range seen {
					if n > 1 {
						t.Errorf("notice %s sent %d times, want once", k, n)
					}
				}
			})
		}
	})
}

// TestCampaignMergeNotice: an incident reached only through a stolen-token
// campaign's keys and absorbed by the batch is named in the notice as
// merged: relayHijacks saved day 0, day 9 (alone: its provider was last
// used nine days before), then day 4, which joins day 0 through the
// country and, through the campaign now active five days before, brings
// in day 9's incident, which no key of day 4 reaches.
func TestCampaignMergeNotice(t *testing.T) {
	hs := relayHijacks("192.0.2", t0)
	backends(t, func(t *testing.T, b backend) {
		var changes []Change
		notice := func(kind string, in store.Incident, detail any) (*store.Action, error) {
			c, ok := detail.(Change)
			if !ok {
				return nil, fmt.Errorf("notice %s of %s: detail %T", kind, in.ID, detail)
			}
			changes = append(changes, c)
			return nil, nil
		}
		s, err := store.Open(t.Context(), b.target(t), store.Options{Incidents: New(Options{}), IncidentNotice: notice})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		for _, a := range []event.Alert{hs[0], hs[2], hs[1]} {
			if err := s.SaveAlerts(t.Context(), []event.Alert{a}); err != nil {
				t.Fatal(err)
			}
		}
		day9 := incident.IDFor(hs[2].ID)
		got := stored(t, s)
		if want := map[string][]string{incident.IDFor(hs[0].ID): {hs[0].ID, hs[1].ID, hs[2].ID}}; !cmp.Equal(want, got) {
			t.Fatalf("incidents %v, want %v", got, want)
		}
		var kinds []string
		for _, c := range changes {
			kinds = append(kinds, c.Incident.ID+" "+c.Key())
		}
		if want := []string{incident.IDFor(hs[0].ID) + " opened/0", day9 + " opened/0", incident.IDFor(hs[0].ID) + " grew/2"}; !slices.Equal(kinds, want) {
			t.Fatalf("notices %v, want %v", kinds, want)
		}
		last := changes[len(changes)-1]
		if !slices.Equal(last.Merged, []string{day9}) {
			t.Errorf("grew notice merged %v, want [%s] (day 9's incident)", last.Merged, day9)
		}
		if want := []string{hs[1].ID, hs[2].ID}; !slices.Equal(last.Added, want) {
			t.Errorf("grew notice added %v, want %v", last.Added, want)
		}
	})
}
