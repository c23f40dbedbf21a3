package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// TriageStore is the part of the store the triage endpoints use:
// analysts' verdicts on alerts and suppressions.
type TriageStore interface {
	AddFeedback(ctx context.Context, f store.Feedback) (store.Feedback, error)
	ListFeedback(ctx context.Context, alertID string) ([]store.Feedback, error)
	AddSuppression(ctx context.Context, s store.Suppression) (store.Suppression, error)
	RemoveSuppression(ctx context.Context, id, by string, now time.Time) error
	ListSuppressions(ctx context.Context, now time.Time, all bool) ([]store.Suppression, error)
}

// MaxSuppression is the longest suppression accepted: a forgotten one
// must not silence an entity for good.
const MaxSuppression = 90 * 24 * time.Hour

func (s *Server) registerTriage() {
	if s.opts.Triage == nil {
		return
	}
	s.handleFunc("GET /v1/alerts/{id}/feedback", auth.NeedAnalyst, s.handleListFeedback)
	s.handleFunc("POST /v1/alerts/{id}/feedback", auth.NeedAnalyst, s.handleFeedback)
	s.handleFunc("GET /v1/suppressions", auth.NeedAnalyst, s.handleSuppressions)
	s.handleFunc("POST /v1/suppressions", auth.NeedAnalyst, s.handleSuppress)
	s.handleFunc("DELETE /v1/suppressions/{id}", auth.NeedAnalyst, s.handleUnsuppress)
}

func (s *Server) handleFeedback(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Verdict string `json:"verdict"`
		Note    string `json:"note"`
		By      string `json:"by"`
	}
	if err := decodeSmallJSON(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	if !store.ValidVerdict(body.Verdict) {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("verdict: want %s, %s or %s, got %q",
			store.VerdictTruePositive, store.VerdictFalsePositive, store.VerdictBenign, body.Verdict))
		return
	}
	body.By = caller(r, body.By)
	f := store.Feedback{AlertID: r.PathValue("id"), Verdict: body.Verdict, Note: body.Note, By: body.By, At: s.opts.Now().UTC()}
	f.SuppressFor = s.opts.FeedbackSuppression
	f, err := s.opts.Triage.AddFeedback(r.Context(), f)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, f)
}

func (s *Server) handleListFeedback(w http.ResponseWriter, r *http.Request) {
	list, err := s.opts.Triage.ListFeedback(r.Context(), r.PathValue("id"))
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"feedback": list})
}

func (s *Server) handleSuppressions(w http.ResponseWriter, r *http.Request) {
	list, err := s.opts.Triage.ListSuppressions(r.Context(), s.opts.Now(), r.URL.Query().Get("all") == "true")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"suppressions": list})
}

func (s *Server) handleSuppress(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Entity   string    `json:"entity"` // kind:id
		Detector string    `json:"detector"`
		For      string    `json:"for"`   // a duration, e.g. "24h"
		Until    time.Time `json:"until"` // or an end time
		Reason   string    `json:"reason"`
		By       string    `json:"by"`
	}
	if err := decodeSmallJSON(r, &body); err != nil {
		writeError(w, http.StatusBadRequest, "body: "+err.Error())
		return
	}
	sp, err := NewSuppression(body.Entity, body.Detector, body.For, body.Until, body.Reason, caller(r, body.By), s.opts.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	sp, err = s.opts.Triage.AddSuppression(r.Context(), sp)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, sp)
}

// NewSuppression validates a suppression request: entity "kind:id", a
// duration (for) or an end time (until), a reason. The API and the CLI
// share it.
func NewSuppression(entity, detector, dur string, until time.Time, reason, by string, now time.Time) (store.Suppression, error) {
	kind, id, ok := strings.Cut(entity, ":")
	if !ok || kind == "" || id == "" {
		return store.Suppression{}, fmt.Errorf("entity: want kind:id (e.g. source:203.0.113.9), got %q", entity)
	}
	if strings.TrimSpace(reason) == "" {
		return store.Suppression{}, errors.New("reason: required (the audit log keeps why)")
	}
	now = now.UTC()
	switch {
	case dur != "" && !until.IsZero():
		return store.Suppression{}, errors.New("give for or until, not both")
	case dur != "":
		d, err := time.ParseDuration(dur)
		if err != nil || d <= 0 {
			return store.Suppression{}, fmt.Errorf("for: want a positive duration like 24h, got %q", dur)
		}
		until = now.Add(d)
	case until.IsZero():
		return store.Suppression{}, errors.New("for or until: required")
	}
	if !until.After(now) {
		return store.Suppression{}, fmt.Errorf("until %s is not in the future", until.Format(time.RFC3339))
	}
	if until.Sub(now) > MaxSuppression {
		return store.Suppression{}, fmt.Errorf("a suppression lasts at most %s", MaxSuppression)
	}
	if by == "" {
		by = "api"
	}
	return store.Suppression{Entity: event.EntityKey{Kind: event.EntityKind(kind), ID: id}, Detector: detector,
		Until: until.UTC(), Reason: reason, By: by, Created: now}, nil
}

func (s *Server) handleUnsuppress(w http.ResponseWriter, r *http.Request) {
	by := caller(r, r.URL.Query().Get("by"))
	if err := s.opts.Triage.RemoveSuppression(r.Context(), r.PathValue("id"), by, s.opts.Now().UTC()); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
