package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/incident/track"
	"github.com/haechi-sec/haechi/internal/store"
)

func oneFinding(id string, at time.Time, subject event.EntityKey, sev event.Severity, related ...event.EntityKey) event.Alert {
	f := event.Finding{Detector: "d", Kind: "k", Entity: subject, Time: at, Score: 80, Severity: sev, Evidence: []string{}, Related: related}
	return event.Alert{ID: id, Time: at, Entity: subject, Severity: sev, Score: 80, Title: "t", State: event.AlertOpen,
		Detector: "d", LastTime: at, FindingCount: 1, Findings: []event.Finding{f}}
}

// incidentServer is the API over a real store keeping incidents: key "k"
// (which the ledger fake says touched two customers) on 2025-06-25, and
// two principals' incidents merged by a third alert naming both.
func incidentServer(t *testing.T) (srv *httptest.Server, st *store.Store, audit *[]auditEntry) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{Incidents: track.New(track.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	day := time.Date(2025, 6, 25, 10, 0, 0, 0, time.UTC)
	p, q := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}, event.EntityKey{Kind: event.EntityPrincipal, ID: "e:2"}
	for _, batch := range [][]event.Alert{
		{oneFinding("al-key", day, event.EntityKey{Kind: event.EntitySigningKey, ID: "k"}, event.SeverityCritical)},
		{oneFinding("al-p", day.Add(24*time.Hour), p, event.SeverityMedium)},
		{oneFinding("al-q", day.Add(25*time.Hour), q, event.SeverityHigh)},
		{oneFinding("al-pq", day.Add(26*time.Hour), event.EntityKey{Kind: event.EntityToken, ID: "tk"}, event.SeverityHigh, p, q)},
	} {
		if err := st.SaveAlerts(t.Context(), batch); err != nil {
			t.Fatal(err)
		}
	}
	reads := new(int)
	audit = new([]auditEntry)
	h := api.New(api.Options{Alerts: st, Incidents: st, Scope: ledgerOf{reads},
		Audit: func(_ context.Context, _ time.Time, kind, _ string, detail any) error {
			*audit = append(*audit, auditEntry{kind, detail.(map[string]any)})
			return nil
		}})
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, st, audit
}

func getInto(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func TestIncidentsListPagesAndFilters(t *testing.T) {
	srv, _, _ := incidentServer(t)
	keyInc, pInc := incident.IDFor("al-key"), incident.IDFor("al-p")
	var ids []string
	next := ""
	for range 3 {
		var page api.IncidentList
		if code := getInto(t, srv.URL+"/v1/incidents?limit=1&after="+next, &page); code != 200 {
			t.Fatalf("list: %d", code)
		}
		for _, in := range page.Incidents {
			ids = append(ids, in.ID)
			if in.Body != nil {
				t.Errorf("a listing carries the incident's detail")
			}
		}
		if next = page.Next; next == "" {
			break
		}
	}
	// Newest start first; the merged principals' incident kept the older
	// principal's id.
	if want := []string{pInc, keyInc}; strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Errorf("paged ids %v, want %v", ids, want)
	}
	for query, want := range map[string]string{
		"severity=critical":          keyInc,
		"severity=high":              pInc + "," + keyInc,
		"state=open":                 pInc + "," + keyInc,
		"state=closed":               "",
		"since=2025-06-26T11:00:00Z": pInc,
	} {
		var page api.IncidentList
		if code := getInto(t, srv.URL+"/v1/incidents?"+query, &page); code != 200 {
			t.Fatalf("%s: %d", query, code)
		}
		var got []string
		for _, in := range page.Incidents {
			got = append(got, in.ID)
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: %v, want %s", query, got, want)
		}
	}
	for _, bad := range []string{"state=done", "severity=huge", "since=yesterday", "after=!!", "limit=0"} {
		if code := getInto(t, srv.URL+"/v1/incidents?"+bad, nil); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
}

func TestIncidentShowResolvesAliasWithScope(t *testing.T) {
	srv, _, audit := incidentServer(t)
	var d api.IncidentDetail
	// al-q founded an incident of its own before al-pq merged it into al-p's.
	if code := getInto(t, srv.URL+"/v1/incidents/"+incident.IDFor("al-q"), &d); code != 200 {
		t.Fatalf("show alias: %d", code)
	}
	if d.ID != incident.IDFor("al-p") || d.Requested != incident.IDFor("al-q") || d.AlertCount != 3 {
		t.Errorf("alias: id %s requested %s alerts %d", d.ID, d.Requested, d.AlertCount)
	}
	var body incident.Incident
	if err := json.Unmarshal(d.Body, &body); err != nil || len(body.Timeline) != 3 {
		t.Errorf("detail: %v, timeline %d", err, len(body.Timeline))
	}
	if code := getInto(t, srv.URL+"/v1/incidents/"+incident.IDFor("al-key"), &d); code != 200 {
		t.Fatalf("show: %d", code)
	}
	if d.Scope == nil || d.Scope.Total != 2 {
		t.Errorf("the key's incident's scope: %+v (%s), want 2 records", d.Scope, d.ScopeError)
	}
	if n := len(*audit); n == 0 || (*audit)[n-1].kind != "scope_read" {
		t.Errorf("reading an incident's scope is not audited: %+v", *audit)
	}
	if code := getInto(t, srv.URL+"/v1/incidents/in-nope", nil); code != http.StatusNotFound {
		t.Errorf("unknown incident: %d, want 404", code)
	}
}

func TestIncidentVerdict(t *testing.T) {
	srv, st, _ := incidentServer(t)
	post := func(id, body string) (int, store.Incident) {
		resp, err := http.Post(srv.URL+"/v1/incidents/"+id+"/verdict", "application/json", bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var in store.Incident
		if resp.StatusCode == 200 {
			_ = json.NewDecoder(resp.Body).Decode(&in)
		}
		return resp.StatusCode, in
	}
	for _, bad := range []string{`{}`, `{"verdict":"maybe"}`, `{"state":"done"}`, `not json`} {
		if code, _ := post(incident.IDFor("al-key"), bad); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	if code, _ := post("in-nope", `{"verdict":"benign"}`); code != http.StatusNotFound {
		t.Errorf("unknown: %d, want 404", code)
	}
	// Through an alias; a verdict alone closes.
	code, in := post(incident.IDFor("al-q"), `{"verdict":"true_positive","note":"one insider"}`)
	if code != 200 || in.ID != incident.IDFor("al-p") || in.State != store.IncidentClosed || in.Verdict != store.VerdictTruePositive || in.Note != "one insider" {
		t.Fatalf("verdict: %d %+v", code, in)
	}
	// It stays through a later alert of the incident.
	if err := st.SaveAlerts(t.Context(), []event.Alert{oneFinding("al-p2", time.Date(2025, 6, 27, 10, 0, 0, 0, time.UTC),
		event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}, event.SeverityLow)}); err != nil {
		t.Fatal(err)
	}
	got, err := st.GetIncident(t.Context(), in.ID)
	if err != nil || got.AlertCount != 4 || got.State != store.IncidentClosed || got.Verdict != store.VerdictTruePositive {
		t.Errorf("after a new alert: %+v, %v", got, err)
	}
	if code, in := post(in.ID, `{"state":"contained"}`); code != 200 || in.State != store.IncidentContained {
		t.Errorf("state only: %d %+v", code, in)
	}
}

// The verdict needs what an alert's verdict needs.
func TestIncidentRoutesRoles(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s := api.New(api.Options{Alerts: st, Incidents: st, Triage: st})
	needs := map[string]string{}
	for _, r := range s.Routes() {
		needs[r.Pattern] = r.Need.String()
	}
	feedback := needs["POST /v1/alerts/{id}/feedback"]
	for _, p := range []string{"GET /v1/incidents", "GET /v1/incidents/{id}", "POST /v1/incidents/{id}/verdict"} {
		if needs[p] == "" || needs[p] != feedback {
			t.Errorf("%s needs %q, want %q (as an alert's verdict)", p, needs[p], feedback)
		}
	}
}

// TestScopeByIncident: GET /v1/scope?incident=ID answers and exports the
// incident's combined scope (an alias resolves), audited like any scope;
// the incident stands alone, and an unknown one is 404.
func TestScopeByIncident(t *testing.T) {
	srv, _, audit := incidentServer(t)
	key := incident.IDFor("al-key")
	for _, tc := range []struct {
		query string
		code  int
		body  string
	}{
		{"incident=" + key, 200, `"total":2,"by_type":{"customer":2},"by_field":{},"name_only":0,"terms":[{"dim":"key","values":["k"],"from_day":"2025-06-25","to_day":"2025-06-25"}],"from_day":"2025-06-25","to_day":"2025-06-25"}`},
		{"incident=" + key + "&export=csv", 200, "record_type,record_id\ncustomer,1\ncustomer,2\n"},
		{"incident=" + key + "&from=2025-06-25&to=2025-06-25", 200, `"total":2`},
		// from and to replace the incident's days (each term keeps to its
		// own within them).
		{"incident=" + key + "&from=2025-06-26&to=2025-06-27", 200, `"from_day":"2025-06-26","to_day":"2025-06-27"`},
		{"incident=" + key + "&key=k", http.StatusBadRequest, "stands alone"},
		{"incident=" + key + "&to=2025-06-24", http.StatusBadRequest, "before from"},
		{"incident=in-nope", http.StatusNotFound, "not found"},
	} {
		*audit = nil
		resp, err := http.Get(srv.URL + "/v1/scope?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code || !strings.Contains(b.String(), tc.body) {
			t.Errorf("%s: %d %s, want %d with %q", tc.query, resp.StatusCode, b.String(), tc.code, tc.body)
		}
		if audited := len(*audit) == 1 && strings.HasPrefix((*audit)[0].kind, "scope_"); audited != (tc.code == 200) {
			t.Errorf("%s: audit %+v", tc.query, *audit)
		}
	}
}
