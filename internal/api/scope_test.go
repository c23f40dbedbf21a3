package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// An alert's scope is its entity's, in the dimension that indexes that
// entity's kind; kinds the ledger does not index are refused with a hint.
func TestScopeQueryAlert(t *testing.T) {
	alerts := map[string]event.EntityKey{
		"al-key":     {Kind: event.EntitySigningKey, ID: "auth-2022-11"},
		"al-person":  {Kind: event.EntityPrincipal, ID: "e:1042"},
		"al-source":  {Kind: event.EntitySource, ID: "45.77.10.98"},
		"al-network": {Kind: "network", ID: "AS20473"},
		"al-country": {Kind: "country", ID: "SG"},
		"al-token":   {Kind: event.EntityToken, ID: "tk-1"},
		"al-role":    {Kind: "role", ID: "cs-agent"},
	}
	get := func(id string) (event.Alert, error) {
		e, ok := alerts[id]
		if !ok {
			return event.Alert{}, errors.New("not found")
		}
		return event.Alert{ID: id, Entity: e}, nil
	}
	for _, tc := range []struct {
		alert   string
		dim     ledger.Dimension
		errPart string
	}{
		{"al-key", ledger.Key, ""},
		{"al-person", ledger.Principal, ""},
		{"al-source", ledger.Source, ""},
		{"al-network", ledger.Network, ""},
		{"al-country", ledger.Country, ""},
		{"al-token", ledger.Token, ""},
		{"al-role", "", "is about a role"},
		{"al-missing", "", "not found"},
	} {
		q, err := api.ScopeQuery(url.Values{"alert": {tc.alert}}, get)
		if tc.errPart != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errPart) {
				t.Errorf("%s: err %v, want one containing %q", tc.alert, err, tc.errPart)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.alert, err)
			continue
		}
		want := alerts[tc.alert].ID
		if len(q.Terms) != 1 || q.Terms[0].Dim != tc.dim || len(q.Terms[0].Values) != 1 || q.Terms[0].Values[0] != want {
			t.Errorf("%s: terms %+v, want %s=%s", tc.alert, q.Terms, tc.dim, want)
		}
	}
}

// ledgerOf is a ledger in which key "k" touched customers 1 and 2 (and
// nothing else was recorded); it counts the rows read.
type ledgerOf struct{ reads *int }

func (l ledgerOf) LedgerRows(_ context.Context, dim string, values []string, _, _ int64) ([]store.LedgerRow, error) {
	*l.reads++
	if dim != string(ledger.Key) || len(values) != 1 || values[0] != "k" {
		return nil, nil
	}
	b, err := roaring.BitmapOf(1, 2).ToBytes()
	if err != nil {
		return nil, err
	}
	return []store.LedgerRow{{Dim: dim, Value: "k", Day: 20264, RType: "customer", Bitmap: b}}, nil
}

func (l ledgerOf) LedgerValues(context.Context, string, int64, int64) ([]string, error) {
	*l.reads++
	return []string{"10.0.0.1"}, nil
}

func (ledgerOf) LedgerDictNames(context.Context, []uint32) (map[uint32]string, error) {
	return map[uint32]string{}, nil
}

type auditEntry struct {
	kind   string
	detail map[string]any
}

func scopeServer(t *testing.T) (srv *httptest.Server, audit *[]auditEntry, reads *int) {
	t.Helper()
	audit, reads = new([]auditEntry), new(int)
	h := api.New(api.Options{
		Alerts: &fakeStore{alerts: []event.Alert{{ID: "al-role", Entity: event.EntityKey{Kind: "role", ID: "cs-agent"}}}},
		Scope:  ledgerOf{reads},
		Audit: func(_ context.Context, _ time.Time, kind, _ string, detail any) error {
			*audit = append(*audit, auditEntry{kind, detail.(map[string]any)})
			return nil
		},
	})
	srv = httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, audit, reads
}

// A bad parameter — a CIDR that does not parse among them (it answered
// 500) — is the caller's mistake: 400 with what is wrong, before the
// ledger is read or anything audited.
func TestScopeBadParameters(t *testing.T) {
	srv, audit, reads := scopeServer(t)
	for _, tc := range []struct {
		query string
		code  int
		msg   string
	}{
		{"source=10.0.0.0/99", 400, `source "10.0.0.0/99": want an address or a CIDR prefix`},
		{"source=10.0.0.1,not-a/cidr", 400, `source "not-a/cidr"`},
		{"key=k&source=10.0.0.0/33&export=csv", 400, "CIDR prefix"},
		{"key=k&export=bogus", 400, `export: want csv or ndjson, got "bogus"`},
		{"key=k&export=CSV", 400, "export: want csv or ndjson"},
		{"key=k&from=yesterday", 400, "from: want an RFC 3339 time"},
		{"key=k&from=2025-06-02&to=2025-06-01", 400, "to is before from"},
		{"key=k&intersect=maybe", 400, "intersect: want true or false"},
		{"", 400, "say whose scope"},
		{"alert=al-role", 400, "is about a role"},
		{"alert=al-nope", 404, "not found"},
	} {
		resp, err := http.Get(srv.URL + "/v1/scope?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error string }
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.code || err != nil || !strings.Contains(e.Error, tc.msg) {
			t.Errorf("%s: %d %q (%v), want %d with %q", tc.query, resp.StatusCode, e.Error, err, tc.code, tc.msg)
		}
	}
	if *reads != 0 || len(*audit) != 0 {
		t.Errorf("refused requests read the ledger %d times and were audited: %+v", *reads, *audit)
	}
}

// An empty answer by signing key says that key selects token.key_id and
// that an access key id is selected by token; other answers carry no hint.
func TestScopeHint(t *testing.T) {
	srv, _, _ := scopeServer(t)
	for _, tc := range []struct{ query, hint string }{
		{"key=ASIA3EXAMPLEINST1KEY", "ASIA3EXAMPLEINST1KEY looks like an access key id, which is a token id (token.id): select it with token=ASIA3EXAMPLEINST1KEY"},
		{"key=nope", "key selects signing keys (token.key_id); to select a token or an access key by its own id (token.id), use token"},
		{"key=k", ""},
		{"token=ASIA3EXAMPLEINST1KEY", ""},
	} {
		resp, err := http.Get(srv.URL + "/v1/scope?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Total int
			Hint  string
		}
		err = json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil || !strings.Contains(res.Hint, tc.hint) || (tc.hint == "") != (res.Hint == "") {
			t.Errorf("%s: %d total %d hint %q (%v), want hint %q", tc.query, resp.StatusCode, res.Total, res.Hint, err, tc.hint)
		}
	}
}

// An answer is audited as a read; an export, once written, as an export.
func TestScopeAudit(t *testing.T) {
	srv, audit, _ := scopeServer(t)
	for _, tc := range []struct {
		query, kind, export, body string
	}{
		{"key=k", "scope_read", "", `"total":2`},
		{"key=k&source=10.0.0.0/8", "scope_read", "", `"total":2`},
		{"key=k&export=csv", "scope_export", "csv", "record_type,record_id\ncustomer,1\ncustomer,2\n"},
		{"key=k&export=ndjson", "scope_export", "ndjson", `{"record_type":"customer","record_id":"2"}`},
	} {
		*audit = nil
		resp, err := http.Get(srv.URL + "/v1/scope?" + tc.query)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), tc.body) {
			t.Errorf("%s: %d %s", tc.query, resp.StatusCode, body)
		}
		if len(*audit) != 1 {
			t.Fatalf("%s: %d audit entries, want 1", tc.query, len(*audit))
		}
		e := (*audit)[0]
		if e.kind != tc.kind || e.detail["export"] != tc.export || e.detail["query"] != tc.query || e.detail["records"] != int64(2) {
			t.Errorf("%s: audited %s %v", tc.query, e.kind, e.detail)
		}
		if tc.export != "" && e.detail["complete"] != true {
			t.Errorf("%s: export not audited as complete: %v", tc.query, e.detail)
		}
	}
}
