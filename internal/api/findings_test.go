package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// findingsServer serves the API over a real SQLite store holding a few
// scored findings, guarded by tokens of each role.
func findingsServer(t *testing.T) (srv *httptest.Server, tokens map[auth.Role]string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2025, 6, 24, 18, 0, 0, 0, time.UTC)
	src := event.EntityKey{Kind: event.EntitySource, ID: "45.77.201.13"}
	p := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1042"}
	var fs []store.ScoredFinding
	add := func(e event.EntityKey, det, kind string, t time.Time, score float64, alertID string) {
		fs = append(fs, store.ScoredFinding{Finding: event.Finding{Detector: det, Kind: kind, Title: det, Entity: e, Time: t,
			Score: score, Severity: event.SeverityForScore(score), Evidence: []string{t.String()}, Contribution: score}, Risk: score, Threshold: 90, Alert: alertID})
	}
	add(src, "scripted_client", "scripted_client", at, 45, "")
	for i := range 5 {
		add(p, "principal_geo", "new_country", at.Add(time.Duration(i)*time.Hour), 40, "")
	}
	add(p, "terminated_identity", "activity_after_termination", at.Add(10*time.Hour), 95, "al-1")
	if err := st.SaveFindings(ctx, fs); err != nil {
		t.Fatal(err)
	}
	tokens = map[auth.Role]string{}
	for _, r := range []auth.Role{auth.RoleIngest, auth.RoleAnalyst, auth.RoleAdmin} {
		tok, _, err := auth.CreateToken(ctx, st, r, string(r), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tokens[r] = tok
	}
	srv = httptest.NewServer(api.New(api.Options{Alerts: st, Findings: st, Auth: auth.New(auth.Options{Store: st})}))
	t.Cleanup(srv.Close)
	return srv, tokens
}

func getFindings(t *testing.T, srv *httptest.Server, token, query string) (int, api.FindingList, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/findings?"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var l api.FindingList
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(body, &l); err != nil {
			t.Fatalf("answer is not a finding list: %v\n%q %v", err, body, resp.Header)
		}
	}
	return resp.StatusCode, l, string(body)
}

// GET /v1/findings needs an analyst (or admin), like the other reads.
func TestFindingsAuth(t *testing.T) {
	srv, tokens := findingsServer(t)
	for _, c := range []struct {
		name, token string
		want        int
	}{
		{"none", "", http.StatusUnauthorized},
		{"bad", "hch_notatoken", http.StatusUnauthorized},
		{"ingest", tokens[auth.RoleIngest], http.StatusForbidden},
		{"analyst", tokens[auth.RoleAnalyst], http.StatusOK},
		{"admin", tokens[auth.RoleAdmin], http.StatusOK},
	} {
		if code, _, body := getFindings(t, srv, c.token, ""); code != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, code, c.want, body)
		}
	}
}

// Filters select by entity, detector, kind, time and threshold; pages
// follow the cursor; bad parameters answer 400 saying what is wrong.
func TestFindingsFilters(t *testing.T) {
	srv, tokens := findingsServer(t)
	tok := tokens[auth.RoleAnalyst]
	for _, c := range []struct {
		query string
		want  int
	}{
		{"", 7},
		{"entity=source:45.77.201.13", 1},
		{"entity=source", 1},
		{"entity=principal:e:1042", 6},
		{"detector=principal_geo", 5},
		{"kind=scripted_client", 1},
		{"entity=principal:e:1042&below=true", 5},
		{"since=2025-06-24T20:00:00Z", 4},
		{"since=2025-06-24T18:00:00Z&before=2025-06-24T19:00:00Z", 2},
	} {
		code, l, body := getFindings(t, srv, tok, c.query)
		if code != http.StatusOK || len(l.Findings) != c.want {
			t.Errorf("?%s: %d, %d findings, want %d: %s", c.query, code, len(l.Findings), c.want, body)
		}
	}
	// The scripted client finding below the threshold carries its figures.
	_, l, _ := getFindings(t, srv, tok, "detector=scripted_client")
	if f := l.Findings[0]; f.Score != 45 || f.Contribution != 45 || f.Threshold != 90 || f.Alert != "" || !strings.HasPrefix(f.ID, "fd-") {
		t.Errorf("scripted finding: %+v", f)
	}
	// Pages of two over the principal's six.
	var seen []string
	q := "entity=principal:e:1042&limit=2"
	for range 4 {
		code, l, body := getFindings(t, srv, tok, q)
		if code != http.StatusOK {
			t.Fatalf("%d %s", code, body)
		}
		for _, f := range l.Findings {
			seen = append(seen, f.Time.Format("15"))
		}
		if l.Next == "" {
			break
		}
		q = "entity=principal:e:1042&limit=2&cursor=" + url.QueryEscape(l.Next)
	}
	if got := strings.Join(seen, ","); got != "04,22,21,20,19,18" {
		t.Errorf("pages: %s", got)
	}
	for _, c := range []struct{ query, want string }{
		{"limit=0", "limit: want an integer from 1 to 1000"},
		{"limit=5000", "limit: want an integer from 1 to 1000"},
		{"since=yesterday", "since: want an RFC 3339 time"},
		{"before=9999-01-01T00:00:00Z", "before:"},
		{"since=2025-06-25T00:00:00Z&before=2025-06-24T00:00:00Z", "must be before"},
		{"entity=:x", "entity: want kind:id or a kind"},
		{"entity=principal:", "entity: want kind:id or a kind"},
		{"below=maybe", "below: want true or false"},
		{"cursor=garbage", "cursor: not one this server issued"},
		{"detecter=principal_geo", `unknown parameter \"detecter\"`},
	} {
		code, _, body := getFindings(t, srv, tok, c.query)
		if code != http.StatusBadRequest || !strings.Contains(body, c.want) {
			t.Errorf("?%s: %d %s, want 400 containing %q", c.query, code, body, c.want)
		}
	}
}

// Without a findings reader the route is not served.
func TestFindingsNotServedWithoutReader(t *testing.T) {
	srv := httptest.NewServer(api.New(api.Options{Alerts: &fakeStore{}}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/findings")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("%d, want 404", resp.StatusCode)
	}
}
