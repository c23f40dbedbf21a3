package api_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

type fakeStore struct {
	q      store.AlertQuery
	alerts []event.Alert
}

func (f *fakeStore) ListAlerts(_ context.Context, q store.AlertQuery) ([]event.Alert, error) {
	f.q = q
	return f.alerts, nil
}

func (f *fakeStore) GetAlert(_ context.Context, id string) (event.Alert, error) {
	for _, a := range f.alerts {
		if a.ID == id {
			return a, nil
		}
	}
	return event.Alert{}, store.ErrNotFound
}

type fixture struct {
	srv      *httptest.Server
	ingested []event.Event
	busy     bool
	st       *fakeStore
	reg      *prometheus.Registry
}

func newFixture(t *testing.T, maxBody int64) *fixture {
	t.Helper()
	f := &fixture{st: &fakeStore{}, reg: prometheus.NewRegistry()}
	h := api.New(api.Options{
		Ingest: func(evs []event.Event) error {
			if f.busy {
				return api.ErrBusy
			}
			f.ingested = append(f.ingested, evs...)
			return nil
		},
		Alerts:       f.st,
		MaxBodyBytes: maxBody,
		Gatherer:     f.reg,
		Registerer:   f.reg,
	})
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) post(t *testing.T, body []byte, gz bool) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", bytes.NewReader(body))
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp, m
}

func contract(t *testing.T) []byte {
	b, err := os.ReadFile("../../testdata/contract-events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The store compares alert times as Unix nanoseconds; a since or before
// beyond them used to wrap (since=9999-… listed every alert).
func TestAlertsTimeOutOfRange(t *testing.T) {
	f := newFixture(t, 0)
	for _, c := range []struct {
		q    string
		want int
	}{
		{"since=9999-01-01T00:00:00Z", http.StatusBadRequest},
		{"before=9999-01-01T00:00:00Z", http.StatusBadRequest},
		{"since=1600-01-01T00:00:00Z", http.StatusBadRequest},
		{"before=2262-04-11T23:47:16.854775808Z", http.StatusBadRequest},
		{"since=1677-09-21T00:12:43.145224191Z", http.StatusBadRequest},
		{"since=1677-09-21T00:12:43.145224192Z", http.StatusOK},
		{"before=2262-04-11T23:47:16.854775807Z", http.StatusOK},
	} {
		resp, err := http.Get(f.srv.URL + "/v1/alerts?" + c.q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: %s, want %d", c.q, resp.Status, c.want)
		}
		if c.want == http.StatusBadRequest && !strings.Contains(string(body), "outside the supported range") {
			t.Errorf("%s: answer %s does not say why", c.q, body)
		}
	}
}

func TestIngestContract(t *testing.T) {
	f := newFixture(t, 0)
	resp, m := f.post(t, contract(t), false)
	if resp.StatusCode != 200 || m["accepted"] != 15.0 || m["rejected"] != 0.0 {
		t.Fatalf("%s %v", resp.Status, m)
	}
	if len(f.ingested) != 15 || f.ingested[0].Line != 1 || f.ingested[14].Line != 15 {
		t.Fatalf("ingested %d events", len(f.ingested))
	}
}

func TestIngestGzipAndRejects(t *testing.T) {
	f := newFixture(t, 0)
	body := append(contract(t), []byte("not json\n{\"@timestamp\":\"2025-01-01T00:00:00Z\",\"event\":{\"dataset\":\"x\"}}\n")...)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(body)
	zw.Close()
	resp, m := f.post(t, buf.Bytes(), true)
	if resp.StatusCode != 200 || m["accepted"] != 15.0 || m["rejected"] != 2.0 {
		t.Fatalf("%s %v", resp.Status, m)
	}
	errs := m["errors"].([]any)
	first := errs[0].(map[string]any)
	second := errs[1].(map[string]any)
	if first["line"] != 16.0 || first["code"] != "invalid_json" || second["line"] != 17.0 || second["code"] != "missing_field" || second["reason"] == "" {
		t.Fatalf("errors %v", errs)
	}
	metrics := f.get(t, "/metrics")
	for _, want := range []string{"haechi_events_received_total 15", `haechi_events_rejected_total{reason="invalid_json"} 1`, `haechi_events_rejected_total{reason="missing_field"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestIngestTooLarge(t *testing.T) {
	f := newFixture(t, 4000)
	resp, m := f.post(t, contract(t), false)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || m["error"] == nil {
		t.Fatalf("%s %v", resp.Status, m)
	}
	// Chunked (no Content-Length) and gzip bombs are caught while reading.
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat(contract(t), 10))
	zw.Close()
	if buf.Len() >= 4000 {
		t.Fatalf("test body compresses to %d bytes", buf.Len())
	}
	resp, _ = f.post(t, buf.Bytes(), true)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("decompressed over the limit: %s", resp.Status)
	}
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", io.MultiReader(bytes.NewReader(contract(t))))
	req.ContentLength = -1
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	if r2.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("chunked over the limit: %s", r2.Status)
	}
	if len(f.ingested) != 0 {
		t.Fatalf("oversized bodies were partly ingested: %d events", len(f.ingested))
	}
}

func TestIngestBusy(t *testing.T) {
	f := newFixture(t, 0)
	f.busy = true
	resp, _ := f.post(t, contract(t), false)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("%s Retry-After=%q", resp.Status, resp.Header.Get("Retry-After"))
	}
}

func TestIngestBadEncoding(t *testing.T) {
	f := newFixture(t, 0)
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", strings.NewReader("x"))
	req.Header.Set("Content-Encoding", "br")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("%s", resp.Status)
	}
	resp2, _ := f.post(t, []byte("not gzip"), true)
	if resp2.StatusCode != http.StatusBadRequest {
		t.Fatalf("%s", resp2.Status)
	}
}

func (f *fixture) get(t *testing.T, path string) string {
	t.Helper()
	resp, err := http.Get(f.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestAlerts(t *testing.T) {
	f := newFixture(t, 0)
	f.st.alerts = []event.Alert{{ID: "al-1", Entity: event.EntityKey{Kind: "principal", ID: "e:1"}, Severity: event.SeverityCritical, Findings: []event.Finding{}}}
	var list struct {
		Alerts []event.Alert `json:"alerts"`
	}
	if err := json.Unmarshal([]byte(f.get(t, "/v1/alerts?limit=5&since=2025-01-01T00:00:00Z&entity=principal:e:1")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Alerts) != 1 || f.st.q.Limit != 5 || !f.st.q.Since.Equal(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)) || f.st.q.Entity.ID != "e:1" {
		t.Fatalf("list %+v query %+v", list, f.st.q)
	}
	for _, bad := range []string{"limit=0", "limit=x", "limit=5000", "since=yesterday", "entity=e1"} {
		resp, err := http.Get(f.srv.URL + "/v1/alerts?" + bad)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %s, want 400", bad, resp.Status)
		}
	}
	if !strings.Contains(f.get(t, "/v1/alerts/al-1"), `"severity":"critical"`) {
		t.Error("GET /v1/alerts/al-1")
	}
	resp, _ := http.Get(f.srv.URL + "/v1/alerts/nope")
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown alert: %s", resp.Status)
	}
	if got := f.get(t, "/healthz"); !strings.Contains(got, "ok") {
		t.Errorf("healthz %q", got)
	}
	f.st.alerts = nil
	if got := f.get(t, "/v1/alerts"); !strings.Contains(got, `"alerts":[]`) {
		t.Errorf("empty list renders as %q", got)
	}
}

type fakeActions struct {
	decided  []string
	approved int
}

func (f *fakeActions) ListActions(_ context.Context, q store.ActionQuery) ([]store.Action, error) {
	return []store.Action{{ID: "a1", Kind: "revoke_key", Target: "k1", State: "pending_approval"}}, nil
}

func (f *fakeActions) GetAction(_ context.Context, id string) (store.Action, error) {
	if id != "a1" {
		return store.Action{}, store.ErrNotFound
	}
	return store.Action{ID: "a1", State: "pending_approval"}, nil
}

func (f *fakeActions) DecideAction(_ context.Context, id string, approve bool, by, note string, _ time.Time) (store.Action, error) {
	switch id {
	case "a1":
		f.decided = append(f.decided, fmt.Sprintf("%s %v %s %s", id, approve, by, note))
		return store.Action{ID: id, State: map[bool]string{true: "planned", false: "rejected"}[approve]}, nil
	case "done":
		return store.Action{}, store.ErrActionState
	}
	return store.Action{}, store.ErrNotFound
}

func TestActions(t *testing.T) {
	fa := &fakeActions{}
	srv := httptest.NewServer(api.New(api.Options{Alerts: &fakeStore{}, Actions: fa, OnApprove: func() { fa.approved++ }}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/actions?state=pending_approval")
	if err != nil {
		t.Fatal(err)
	}
	var list struct{ Actions []store.Action }
	json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Actions) != 1 || list.Actions[0].ID != "a1" {
		t.Fatalf("%+v", list)
	}
	for _, tc := range []struct {
		path string
		body string
		code int
	}{
		{"/v1/actions/a1/approve", `{"by":"alice","note":"confirmed ex-employee"}`, 200},
		{"/v1/actions/a1/reject", ``, 200},
		{"/v1/actions/done/approve", ``, 409},
		{"/v1/actions/nope/approve", ``, 404},
	} {
		resp, err := http.Post(srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("%s: %s, want %d", tc.path, resp.Status, tc.code)
		}
	}
	if fa.approved != 1 || len(fa.decided) != 2 || fa.decided[0] != "a1 true alice confirmed ex-employee" || fa.decided[1] != "a1 false api " {
		t.Errorf("approved %d, decided %q", fa.approved, fa.decided)
	}
}

func TestIngestFormats(t *testing.T) {
	f := newFixture(t, 0)
	nginxLine := `203.0.113.9 - m:42 [24/Jun/2025:09:00:03 +0900] "GET /api/v2/members/42/profile HTTP/1.1" 200 512 "-" "curl/8.5.0"` + "\n"
	post := func(query, body string) (int, string) {
		resp, err := http.Post(f.srv.URL+"/v1/events"+query, "text/plain", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("?format=nginx", nginxLine); code != 200 || !strings.Contains(body, `"accepted":1`) {
		t.Fatalf("nginx: %d %s", code, body)
	}
	if got := f.ingested[len(f.ingested)-1]; got.User.ID != "m:42" || got.URLPath != "/api/v2/members/42/profile" || got.Dataset != event.DatasetGateway {
		t.Errorf("nginx event %+v", got)
	}
	if code, body := post("?format=bogus", nginxLine); code != 400 || !strings.Contains(body, "unknown input format") {
		t.Errorf("unknown format: %d %s", code, body)
	}
	// The event contract is the default: an nginx line is rejected as JSON.
	if code, body := post("", nginxLine); code != 200 || !strings.Contains(body, `"rejected":1`) {
		t.Errorf("default format: %d %s", code, body)
	}
}

// With a spool, a request is acknowledged only once it is stored; a store
// failure is 503 and unhealthy, and a retried Idempotency-Key is not stored
// twice.
func TestIngestSpool(t *testing.T) {
	var stored []string
	var failing error
	srv := httptest.NewServer(api.New(api.Options{
		Alerts: &fakeStore{},
		Spool: func(_ context.Context, req api.Stored) (bool, error) {
			key, format, body := req.Key, req.Format, req.Body
			if failing != nil {
				return false, failing
			}
			for _, s := range stored {
				if key != "" && strings.HasPrefix(s, key+"|") {
					return true, nil
				}
			}
			stored = append(stored, key+"|"+format+"|"+string(body))
			return false, nil
		},
		Health: func() error { return failing },
	}))
	defer srv.Close()
	post := func(key string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(contract(t)))
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	health := func() int {
		resp, err := http.Get(srv.URL + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	first, retry := post("batch-1"), post("batch-1")
	if first != 200 || retry != 200 || len(stored) != 1 {
		t.Fatalf("idempotent retry stored %d times", len(stored))
	}
	if !strings.HasPrefix(stored[0], "batch-1||") || !strings.HasSuffix(stored[0], string(contract(t))) {
		t.Errorf("stored %.80q", stored[0])
	}
	failing = fmt.Errorf("%w: write: no space left on device", api.ErrUnavailable)
	if code := post("batch-2"); code != http.StatusServiceUnavailable {
		t.Errorf("disk full: %d, want 503", code)
	}
	if code := health(); code != http.StatusServiceUnavailable {
		t.Errorf("healthz while failing: %d", code)
	}
	failing = fmt.Errorf("%w: spool full", api.ErrBusy)
	if code := post("batch-2"); code != http.StatusTooManyRequests {
		t.Errorf("spool full: %d, want 429", code)
	}
	failing = nil
	if post("batch-2") != 200 || health() != 200 || len(stored) != 2 {
		t.Errorf("after recovery: %d stored", len(stored))
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(contract(t)))
	req.Header.Set("Idempotency-Key", "has space")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 400 {
		t.Errorf("bad key: %v %v", resp.Status, err)
	}
}

// A key is handed to the spool scoped to the caller's token ("" without
// one); a key the spool says was reused with another body is answered 422
// naming the key, with nothing accepted; a client key in the tailer's
// "tail:" space is refused 400 before anything is stored.
func TestIngestIdempotencyScope(t *testing.T) {
	var got []api.Stored
	h := api.New(api.Options{
		Alerts: &fakeStore{},
		Spool: func(_ context.Context, req api.Stored) (bool, error) {
			if req.Key == "reused" {
				return false, fmt.Errorf("%w: Idempotency-Key %q was used at 2025-06-24T09:00:00Z with a different body", api.ErrKeyReused, req.Key)
			}
			got = append(got, req)
			return false, nil
		},
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tok := r.Header.Get("X-Test-Token-Id"); tok != "" { // what auth.Guard does for a bearer token
			r = r.WithContext(auth.WithCaller(r.Context(), auth.Caller{TokenID: tok, Role: auth.RoleIngest}))
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	for _, c := range []struct {
		token, key string
		code       int
		scope      string // of what was stored
		answer     string // part of the answer
	}{
		{token: "tok-a", key: "batch-1", code: 200, scope: "tok-a", answer: `"accepted":`},
		{token: "tok-b", key: "batch-1", code: 200, scope: "tok-b", answer: `"accepted":`},
		{key: "batch-1", code: 200, scope: "", answer: `"accepted":`},
		{token: "tok-a", key: "reused", code: 422, answer: `Idempotency-Key \"reused\" was used at 2025-06-24T09:00:00Z with a different body; nothing from this request was accepted`},
		{token: "tok-a", key: "tail:1:2:ab:0-100", code: 400, answer: `reserved for haechi's file tailer`},
		{key: "tail:x", code: 400, answer: `reserved`},
	} {
		before := len(got)
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/events", bytes.NewReader(contract(t)))
		req.Header.Set("Idempotency-Key", c.key)
		if c.token != "" {
			req.Header.Set("X-Test-Token-Id", c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.code || !strings.Contains(string(b), c.answer) || !json.Valid(b) {
			t.Errorf("%+v: %d %s", c, resp.StatusCode, b)
		}
		if stored := len(got) - before; (stored == 1) != (c.code == 200) {
			t.Errorf("%+v: %d stored", c, stored)
		} else if stored == 1 && (got[before].Scope != c.scope || got[before].Key != c.key) {
			t.Errorf("%+v: stored with scope %q key %q", c, got[before].Scope, got[before].Key)
		}
	}
}

// A line dated too far ahead of the server's clock is rejected on its own;
// a spooled body carries the cut-off so it is skipped when read again.
func TestIngestMaxFuture(t *testing.T) {
	now := time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)
	var got []event.Event
	var stored api.Stored
	srv := httptest.NewServer(api.New(api.Options{
		Alerts:    &fakeStore{},
		MaxFuture: time.Hour,
		Now:       func() time.Time { return now },
		Ingest:    func(evs []event.Event) error { got = append(got, evs...); return nil },
	}))
	defer srv.Close()
	body := `{"@timestamp":"2025-06-24T09:30:00Z","event":{"dataset":"d","action":"a"}}
{"@timestamp":"2035-01-01T00:00:00Z","event":{"dataset":"d","action":"a"}}
`
	resp, err := http.Post(srv.URL+"/v1/events", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(got) != 1 || !strings.Contains(string(b), `"line":2`) || !strings.Contains(string(b), "ahead of the server's clock") {
		t.Fatalf("%d %s (%d accepted)", resp.StatusCode, b, len(got))
	}
	spooled := httptest.NewServer(api.New(api.Options{Alerts: &fakeStore{}, MaxFuture: time.Hour, Now: func() time.Time { return now },
		Spool: func(_ context.Context, req api.Stored) (bool, error) { stored = req; return false, nil }}))
	defer spooled.Close()
	resp, err = http.Post(spooled.URL+"/v1/events", "application/x-ndjson", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !stored.NotAfter.Equal(now.Add(time.Hour)) {
		t.Errorf("stored cut-off %v", stored.NotAfter)
	}
	// The events handed with the body are those ingested without a
	// spool: the accepted ones (input indexes aside).
	for i := range got {
		got[i].Input = 0
	}
	for i := range stored.Events {
		stored.Events[i].Input = 0
	}
	if !reflect.DeepEqual(stored.Events, got) {
		t.Errorf("events stored with the body:\n%+v\nwant\n%+v", stored.Events, got)
	}
}

// FuzzIngest throws arbitrary bodies, encodings, formats and keys at the
// ingest handler: it must answer (never panic) with a status it documents.
func FuzzIngest(f *testing.F) {
	f.Add([]byte(`{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"d","action":"a"}}`), "", "", "k")
	f.Add([]byte("203.0.113.9 - - [24/Jun/2025:09:00:03 +0900] \"GET / HTTP/1.1\" 200 1 \"-\" \"x\"\n"), "nginx", "", "")
	f.Add([]byte{0x1f, 0x8b, 0, 0}, "", "gzip", "")
	f.Add([]byte(`{"Records":[{"eventTime":"2025-06-24T09:00:03Z"}]}`), "cloudtrail", "", "key with space")
	srv := api.New(api.Options{
		Alerts:       &fakeStore{},
		MaxBodyBytes: 1 << 16,
		MaxFuture:    time.Hour,
		Ingest:       func([]event.Event) error { return nil },
	})
	ok := map[int]bool{200: true, 400: true, 413: true, 415: true, 429: true, 503: true}
	f.Fuzz(func(t *testing.T, body []byte, format, encoding, key string) {
		req := httptest.NewRequest(http.MethodPost, "/v1/events?format="+url.QueryEscape(format), bytes.NewReader(body))
		if encoding != "" {
			req.Header.Set("Content-Encoding", encoding)
		}
		if key != "" && !strings.ContainsAny(key, "\r\n") {
			req.Header.Set("Idempotency-Key", key)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, req)
		if !ok[w.Code] {
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", w.Body)
		}
	})
}

func TestTriage(t *testing.T) {
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := event.Alert{ID: "al-1", Time: time.Now(), Entity: event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.9"}, Detector: "canary_record"}
	if err := st.SaveAlerts(t.Context(), []event.Alert{a}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api.New(api.Options{Alerts: st, Triage: st}))
	defer srv.Close()
	do := func(method, path, body string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/alerts/al-1/feedback", `{"verdict":"false_positive","note":"load test","by":"alice"}`, 201, `"verdict":"false_positive"`},
		{"POST", "/v1/alerts/al-1/feedback", `{"verdict":"maybe"}`, 400, "verdict: want"},
		{"POST", "/v1/alerts/nope/feedback", `{"verdict":"benign"}`, 404, "not found"},
		{"GET", "/v1/alerts/al-1/feedback", "", 200, `"by":"alice"`},
		{"POST", "/v1/suppressions", `{"entity":"source:203.0.113.9","for":"2h","reason":"pen test","by":"alice"}`, 201, `"id":"sup-`},
		{"POST", "/v1/suppressions", `{"entity":"source:203.0.113.9","for":"2h"}`, 400, "reason: required"},
		{"POST", "/v1/suppressions", `{"entity":"203.0.113.9","for":"2h","reason":"x"}`, 400, "want kind:id"},
		{"POST", "/v1/suppressions", `{"entity":"source:x","for":"9000h","reason":"x"}`, 400, "at most"},
		{"GET", "/v1/suppressions", "", 200, `"reason":"pen test"`},
		{"DELETE", "/v1/suppressions/sup-nope", "", 404, "not found"},
	}
	for _, tc := range tests {
		code, body := do(tc.method, tc.path, tc.body)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s %s: %d %s; want %d containing %q", tc.method, tc.path, tc.body, code, body, tc.code, tc.want)
		}
	}
	list, _ := st.ListSuppressions(t.Context(), time.Now(), false)
	if len(list) != 1 {
		t.Fatalf("suppressions %+v", list)
	}
	if code, _ := do("DELETE", "/v1/suppressions/"+list[0].ID+"?by=bob", ""); code != 204 {
		t.Errorf("lift: %d", code)
	}
}
