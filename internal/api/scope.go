package api

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// ScopeQuery builds a ledger query from scope parameters — the same names
// on the command line and in GET /v1/scope: key (a signing key,
// token.key_id), token (token.id: a token's id, a cloud access key id),
// principal, source (address or CIDR), network, country (each repeatable
// or comma-separated), alert (its entity), from and to (RFC 3339 or
// YYYY-MM-DD, UTC days, inclusive) and intersect.
func ScopeQuery(v url.Values, alert func(id string) (event.Alert, error)) (ledger.Query, error) {
	var q ledger.Query
	for _, d := range []struct {
		param string
		dim   ledger.Dimension
	}{{"key", ledger.Key}, {"token", ledger.Token}, {"principal", ledger.Principal}, {"source", ledger.Source}, {"network", ledger.Network}, {"country", ledger.Country}} {
		var vals []string
		for _, raw := range v[d.param] {
			for _, s := range strings.Split(raw, ",") {
				if s = strings.TrimSpace(s); s != "" {
					vals = append(vals, s)
				}
			}
		}
		if d.dim == ledger.Source {
			for _, s := range vals {
				if !strings.Contains(s, "/") {
					continue
				}
				if _, err := netip.ParsePrefix(s); err != nil {
					return q, fmt.Errorf("source %q: want an address or a CIDR prefix such as 203.0.113.0/24", s)
				}
			}
		}
		if len(vals) > 0 {
			q.Terms = append(q.Terms, ledger.Term{Dim: d.dim, Values: vals})
		}
	}
	for _, id := range v["alert"] {
		if alert == nil {
			return q, errors.New("alert: no alert store")
		}
		a, err := alert(id)
		if err != nil {
			return q, fmt.Errorf("alert %s: %w", id, err)
		}
		dim, ok := ledger.OfEntity(a.Entity.Kind)
		if !ok {
			return q, fmt.Errorf("alert %s is about a %s, which the ledger does not index; scope by key, token, principal, source, network or country instead", id, a.Entity.Kind)
		}
		q.Terms = append(q.Terms, ledger.Term{Dim: dim, Values: []string{a.Entity.ID}})
	}
	if len(q.Terms) == 0 {
		return q, errors.New("say whose scope: key, token, principal, source, network, country or alert")
	}
	var err error
	if q.From, err = parseDay(v.Get("from")); err != nil {
		return q, fmt.Errorf("from: %w", err)
	}
	if q.To, err = parseDay(v.Get("to")); err != nil {
		return q, fmt.Errorf("to: %w", err)
	}
	if !q.From.IsZero() && !q.To.IsZero() && q.To.Before(q.From) {
		return q, errors.New("to is before from")
	}
	switch i := v.Get("intersect"); i {
	case "", "false", "0":
	case "true", "1":
		q.Intersect = true
	default:
		return q, fmt.Errorf("intersect: want true or false, got %q", i)
	}
	return q, nil
}

// ScopeHint explains an empty answer that selected by signing key: key
// selects token.key_id (the key that signs tokens), while an access key id
// (AWS AKIA…/ASIA…) or a token's own id is token.id, selected by token. It
// returns "" when there is nothing to explain.
func ScopeHint(res *ledger.Result) string {
	if res == nil || res.Total != 0 {
		return ""
	}
	for _, t := range res.Terms {
		if t.Dim != ledger.Key {
			continue
		}
		for _, v := range t.Values {
			if looksLikeAccessKey(v) {
				return fmt.Sprintf("key selects signing keys (token.key_id); %s looks like an access key id, which is a token id (token.id): select it with token=%s (--token %s)", v, v, v)
			}
		}
		return "key selects signing keys (token.key_id); to select a token or an access key by its own id (token.id), use token (--token)"
	}
	return ""
}

// looksLikeAccessKey: an AWS access key id, four upper-case letters of
// its kind (AKIA long-term, ASIA temporary, …) and 16 more.
func looksLikeAccessKey(s string) bool {
	if len(s) != 20 || (!strings.HasPrefix(s, "AKIA") && !strings.HasPrefix(s, "ASIA")) {
		return false
	}
	for _, c := range s {
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// scopeAnswer is GET /v1/scope's JSON: the result and, for an empty answer
// that a wrong selector may explain, a hint.
type scopeAnswer struct {
	*ledger.Result
	Hint string `json:"hint,omitempty"`
}

func parseDay(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time or YYYY-MM-DD, got %q", s)
	}
	return t, nil
}

// incidentScopeQuery is the scope question of GET /v1/scope?incident=ID:
// the incident's combined exact scope (ledger.IncidentQuery; an alias
// resolves), narrowed by from and to. The incident stands alone: other
// selectors and intersect are refused.
func (s *Server) incidentScopeQuery(r *http.Request) (ledger.Query, error) {
	v := r.URL.Query()
	for _, p := range []string{"key", "token", "principal", "source", "network", "country", "alert", "intersect"} {
		if v.Has(p) {
			return ledger.Query{}, fmt.Errorf("incident stands alone (its entities are the selectors); drop %s", p)
		}
	}
	if s.opts.Incidents == nil {
		return ledger.Query{}, fmt.Errorf("incident: this server keeps no incidents: %w", store.ErrNotFound)
	}
	id := v.Get("incident")
	in, err := s.opts.Incidents.GetIncident(r.Context(), id)
	if err != nil {
		return ledger.Query{}, fmt.Errorf("incident %s: %w", id, err)
	}
	q, err := ledger.IncidentQuery(in)
	if err != nil {
		return q, fmt.Errorf("incident %s: %w", in.ID, err)
	}
	if from, err := parseDay(v.Get("from")); err != nil {
		return q, fmt.Errorf("from: %w", err)
	} else if !from.IsZero() {
		q.From = from
	}
	if to, err := parseDay(v.Get("to")); err != nil {
		return q, fmt.Errorf("to: %w", err)
	} else if !to.IsZero() {
		q.To = to
	}
	if ledger.Day(q.To) < ledger.Day(q.From) {
		return q, errors.New("to is before from")
	}
	return q, nil
}

// handleScope answers GET /v1/scope (ScopeQuery's parameters, or
// incident=ID with from and to). A bad parameter (selector, day,
// intersect, export) is refused with 400 before anything is read or
// audited; an answer is audited as scope_read before it is sent, an
// export as scope_export once it has been written (with "complete": false
// and the error when writing failed part way).
func (s *Server) handleScope(w http.ResponseWriter, r *http.Request) {
	if s.opts.Scope == nil {
		writeError(w, http.StatusNotFound, "no ledger")
		return
	}
	exp := r.URL.Query().Get("export")
	switch exp {
	case "", "csv", "ndjson":
	default:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("export: want csv or ndjson, got %q", exp))
		return
	}
	var q ledger.Query
	var err error
	if r.URL.Query().Has("incident") {
		q, err = s.incidentScopeQuery(r)
	} else {
		q, err = ScopeQuery(r.URL.Query(), func(id string) (event.Alert, error) {
			return s.opts.Alerts.GetAlert(r.Context(), id)
		})
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	res, err := ledger.Scope(r.Context(), s.opts.Scope, q)
	if errors.Is(err, ledger.ErrInvalidQuery) {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "scope: "+err.Error())
		return
	}
	detail := map[string]any{"query": r.URL.RawQuery, "records": res.Total, "export": exp}
	if exp == "" {
		s.audit(r, "scope_read", detail)
		writeJSON(w, http.StatusOK, scopeAnswer{Result: res, Hint: ScopeHint(res)})
		return
	}
	if exp == "csv" {
		w.Header().Set("Content-Type", "text/csv")
		err = res.WriteCSV(r.Context(), w)
	} else {
		w.Header().Set("Content-Type", "application/x-ndjson")
		err = res.WriteNDJSON(r.Context(), w)
	}
	detail["complete"] = err == nil
	if err != nil {
		detail["error"] = err.Error()
	}
	s.audit(r, "scope_export", detail)
}
