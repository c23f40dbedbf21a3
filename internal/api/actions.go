package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

// ActionStore is the part of the store the actions endpoints use.
type ActionStore interface {
	ListActions(ctx context.Context, q store.ActionQuery) ([]store.Action, error)
	GetAction(ctx context.Context, id string) (store.Action, error)
	DecideAction(ctx context.Context, id string, approve bool, by, note string, now time.Time) (store.Action, error)
}

// ActionList is the answer to GET /v1/actions.
type ActionList struct {
	Actions []store.Action `json:"actions"`
}

func (s *Server) handleActions(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q := store.ActionQuery{State: v.Get("state"), AlertID: v.Get("alert"), Kind: v.Get("kind")}
	var err error
	if q.Limit, err = parseLimit(v.Get("limit")); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	as, err := s.opts.Actions.ListActions(r.Context(), q)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if as == nil {
		as = []store.Action{}
	}
	writeJSON(w, http.StatusOK, ActionList{Actions: as})
}

func (s *Server) handleAction(w http.ResponseWriter, r *http.Request) {
	a, err := s.opts.Actions.GetAction(r.Context(), r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "no action "+strconv.Quote(r.PathValue("id")))
		return
	}
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, a)
}

// decide handles POST /v1/actions/{id}/approve and …/reject. The body may
// carry {"by": "...", "note": "..."}; both are recorded in the audit log.
func (s *Server) decide(approve bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			By   string `json:"by"`
			Note string `json:"note"`
		}
		_ = decodeSmallJSON(r, &body)
		body.By = caller(r, body.By)
		if c, ok := auth.CallerFrom(r.Context()); ok && c.Role != auth.RoleAdmin {
			cur, err := s.opts.Actions.GetAction(r.Context(), r.PathValue("id"))
			if err == nil && cur.NeedsAdmin() {
				writeError(w, http.StatusForbidden, fmt.Sprintf("forbidden: action %s is held because of a %s; deciding it needs an admin token", cur.ID, cur.Reason))
				return
			}
		}
		a, err := s.opts.Actions.DecideAction(r.Context(), r.PathValue("id"), approve, body.By, body.Note, time.Now())
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeError(w, http.StatusNotFound, err.Error())
			return
		case errors.Is(err, store.ErrActionState):
			writeError(w, http.StatusConflict, err.Error())
			return
		case err != nil:
			writeError(w, http.StatusInternalServerError, err.Error())
			return
		}
		if approve && s.opts.OnApprove != nil {
			s.opts.OnApprove()
		}
		writeJSON(w, http.StatusOK, a)
	}
}
