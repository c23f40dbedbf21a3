package api

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

// IncidentStore is the part of the store the incident endpoints use.
type IncidentStore interface {
	ListIncidents(ctx context.Context, q store.IncidentQuery) ([]store.Incident, error)
	GetIncident(ctx context.Context, id string) (store.Incident, error)
	SetIncidentVerdict(ctx context.Context, v store.IncidentVerdict) (store.Incident, error)
}

func (s *Server) registerIncidents() {
	if s.opts.Incidents == nil {
		return
	}
	s.handleFunc("GET /v1/incidents", auth.NeedAnalyst, s.handleIncidents)
	s.handleFunc("GET /v1/incidents/{id}", auth.NeedAnalyst, s.handleIncident)
	// The same role as an alert's verdict (POST /v1/alerts/{id}/feedback).
	s.handleFunc("POST /v1/incidents/{id}/verdict", auth.NeedAnalyst, s.handleIncidentVerdict)
}

// IncidentList is the answer to GET /v1/incidents: a page, newest start
// first, and the cursor of the next (older) page, "" at the end.
type IncidentList struct {
	Incidents []store.Incident `json:"incidents"`
	Next      string           `json:"next,omitempty"`
}

// IncidentCursorString encodes a listing position for the next
// parameter: opaque to clients.
func IncidentCursorString(c store.IncidentCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.Start.UnixNano(), 10) + " " + c.ID))
}

// ParseIncidentCursor is the inverse of IncidentCursorString.
func ParseIncidentCursor(s string) (store.IncidentCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return store.IncidentCursor{}, errors.New("after: not a cursor this server gave")
	}
	ns, id, ok := strings.Cut(string(b), " ")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return store.IncidentCursor{}, errors.New("after: not a cursor this server gave")
	}
	return store.IncidentCursor{Start: time.Unix(0, n).UTC(), ID: id}, nil
}

// IncidentQuery builds a listing query from the parameters of GET
// /v1/incidents (and `haechi incidents list`): limit, state, severity (the
// least), since (RFC 3339: incidents whose alerts reach it) and after (a
// next cursor).
func IncidentQuery(get func(string) string) (store.IncidentQuery, error) {
	var q store.IncidentQuery
	var err error
	if q.Limit, err = parseLimit(get("limit")); err != nil {
		return q, err
	}
	if st := get("state"); st != "" {
		if !store.ValidIncidentState(st) {
			return q, fmt.Errorf("state: want %s, %s or %s, got %q", store.IncidentOpen, store.IncidentContained, store.IncidentClosed, st)
		}
		q.State = st
	}
	if sev := get("severity"); sev != "" {
		if q.MinSeverity, err = event.ParseSeverity(sev); err != nil {
			return q, fmt.Errorf("severity: %w", err)
		}
	}
	if t := get("since"); t != "" {
		ts, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return q, fmt.Errorf("since: want an RFC 3339 time, got %q", t)
		}
		if err := event.CheckTime(ts); err != nil {
			return q, fmt.Errorf("since: %w", err)
		}
		q.Since = ts
	}
	if a := get("after"); a != "" {
		if q.Older, err = ParseIncidentCursor(a); err != nil {
			return q, err
		}
	}
	return q, nil
}

func (s *Server) handleIncidents(w http.ResponseWriter, r *http.Request) {
	q, err := IncidentQuery(r.URL.Query().Get)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	list, err := s.opts.Incidents.ListIncidents(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "list incidents: "+err.Error())
		return
	}
	out := IncidentList{Incidents: list}
	limit := q.Limit
	if limit <= 0 {
		limit = store.DefaultListLimit
	}
	if len(list) == limit {
		last := list[len(list)-1]
		out.Next = IncidentCursorString(store.IncidentCursor{Start: last.Start, ID: last.ID})
	}
	writeJSON(w, http.StatusOK, out)
}

// IncidentDetail is the answer to GET /v1/incidents/{id}: the incident
// (Body: its timeline and entity graph) and its combined exact scope
// (absent when the server has no ledger; ScopeError says why it could not
// be answered).
type IncidentDetail struct {
	store.Incident
	// Requested is the ID asked for when it was an alias of this incident.
	Requested  string         `json:"requested,omitempty"`
	Scope      *ledger.Result `json:"scope,omitempty"`
	ScopeError string         `json:"scope_error,omitempty"`
}

func (s *Server) handleIncident(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	in, err := s.opts.Incidents.GetIncident(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no incident "+strconv.Quote(id))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, "get incident: "+err.Error())
		return
	}
	d := IncidentDetail{Incident: in}
	if id != in.ID {
		d.Requested = id
	}
	if s.opts.Scope != nil {
		res, err := ledger.IncidentScope(r.Context(), s.opts.Scope, in)
		if err != nil {
			d.ScopeError = err.Error()
		} else {
			d.Scope = res
			s.audit(r, "scope_read", map[string]any{"incident": in.ID, "total": res.Total})
		}
	}
	writeJSON(w, http.StatusOK, d)
}

func (s *Server) handleIncidentVerdict(w http.ResponseWriter, r *http.Request) {
	var body struct {
		State   string `json:"state"`
		Verdict string `json:"verdict"`
		Note    string `json:"note"`
		By      string `json:"by"`
	}
	if err := decodeSmallJSON(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if body.Verdict != "" && !store.ValidVerdict(body.Verdict) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("verdict: want %s, %s or %s, got %q",
			store.VerdictTruePositive, store.VerdictFalsePositive, store.VerdictBenign, body.Verdict))
		return
	}
	if body.State != "" && !store.ValidIncidentState(body.State) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("state: want %s, %s or %s, got %q",
			store.IncidentOpen, store.IncidentContained, store.IncidentClosed, body.State))
		return
	}
	if body.Verdict == "" && body.State == "" {
		writeError(w, http.StatusBadRequest, "say a verdict, a state or both")
		return
	}
	in, err := s.opts.Incidents.SetIncidentVerdict(r.Context(), store.IncidentVerdict{IncidentID: r.PathValue("id"),
		State: body.State, Verdict: body.Verdict, Note: body.Note, By: caller(r, body.By), At: s.opts.Now().UTC()})
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no incident "+strconv.Quote(r.PathValue("id")))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, in)
}
