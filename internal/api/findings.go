package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// FindingReader is the part of the store GET /v1/findings reads: the
// risk index of every scored finding.
type FindingReader interface {
	ListFindings(ctx context.Context, q store.FindingQuery) ([]store.ScoredFinding, string, error)
}

// FindingList is the answer of GET /v1/findings: a page of findings,
// newest first, and the cursor of the next page ("" on the last).
type FindingList struct {
	Findings []store.ScoredFinding `json:"findings"`
	Next     string                `json:"next,omitempty"`
}

func (s *Server) registerFindings() {
	if s.opts.Findings != nil {
		s.handleFunc("GET /v1/findings", auth.NeedAnalyst, s.handleFindings)
	}
}

// ParseFindingQuery reads the parameters of a findings listing — entity
// (kind:id, or a kind alone), detector, kind, since and before (RFC 3339),
// below (true: only findings that raised or joined no alert), limit (1 to
// 1000) and cursor — saying what is wrong with a bad one. The API and the
// console share it.
func ParseFindingQuery(v url.Values) (store.FindingQuery, error) {
	var q store.FindingQuery
	for name := range v {
		switch name {
		case "entity", "detector", "kind", "since", "before", "below", "limit", "cursor":
		default:
			return q, fmt.Errorf("unknown parameter %q (want entity, detector, kind, since, before, below, limit or cursor)", name)
		}
	}
	var err error
	if q.Limit, err = parseLimit(v.Get("limit")); err != nil {
		return q, err
	}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"since", &q.Since}, {"before", &q.Before}} {
		t := v.Get(p.name)
		if t == "" {
			continue
		}
		ts, err := time.Parse(time.RFC3339Nano, t)
		if err != nil {
			return q, fmt.Errorf("%s: want an RFC 3339 time, got %q", p.name, t)
		}
		if err := event.CheckTime(ts); err != nil {
			return q, fmt.Errorf("%s: %v", p.name, err)
		}
		*p.dst = ts
	}
	if !q.Since.IsZero() && !q.Before.IsZero() && !q.Since.Before(q.Before) {
		return q, fmt.Errorf("since (%s) must be before before (%s)", v.Get("since"), v.Get("before"))
	}
	if e := v.Get("entity"); e != "" {
		kind, id, _ := strings.Cut(e, ":")
		if kind == "" || strings.HasSuffix(e, ":") {
			return q, fmt.Errorf("entity: want kind:id or a kind (e.g. principal:e:1042, source), got %q", e)
		}
		q.Entity = event.EntityKey{Kind: event.EntityKind(kind), ID: id}
	}
	q.Detector, q.Kind, q.Cursor = v.Get("detector"), v.Get("kind"), v.Get("cursor")
	if b := v.Get("below"); b != "" {
		if q.BelowThreshold, err = strconv.ParseBool(b); err != nil {
			return q, fmt.Errorf("below: want true or false, got %q", b)
		}
	}
	return q, nil
}

func (s *Server) handleFindings(w http.ResponseWriter, r *http.Request) {
	q, err := ParseFindingQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	fs, next, err := s.opts.Findings.ListFindings(r.Context(), q)
	if errors.Is(err, store.ErrBadCursor) {
		writeError(w, http.StatusBadRequest, "cursor: not one this server issued (pass the next of the previous page)")
		return
	}
	if err != nil {
		s.opts.Logger.Error("list findings", "err", err)
		writeError(w, http.StatusInternalServerError, "list findings: "+err.Error())
		return
	}
	if fs == nil {
		fs = []store.ScoredFinding{}
	}
	writeJSON(w, http.StatusOK, FindingList{Findings: fs, Next: next})
}
