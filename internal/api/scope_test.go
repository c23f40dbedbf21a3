package api_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
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
		{"al-token", "", "is about a token"},
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
