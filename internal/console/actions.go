package console

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

// actionGroup is the pending actions of one kind on one target, shown
// (and decided) as one: several alerts about one principal each plan the
// same disable_identity, and one decision settles them all.
type actionGroup struct {
	Kind, Target string
	// Actions are the group's pending actions; the first is the one the
	// page is about (the alert's own, on an alert page).
	Actions []store.Action
	Alerts  []string // the distinct alerts they came from, in order
	Reasons []string // why they wait, distinct, in order
	Admin   bool     // deciding one needs an admin
}

// IDs returns the ids of the group's actions, space-separated (for a
// data attribute).
func (g actionGroup) IDs() string {
	ids := make([]string, len(g.Actions))
	for i := range g.Actions {
		ids[i] = g.Actions[i].ID
	}
	return strings.Join(ids, " ")
}

// Others are the group's actions but the first: the form posts them
// along with the first.
func (g actionGroup) Others() []store.Action { return g.Actions[1:] }

// groupActions groups pending actions by (kind, target), in the order
// each group's first action appears.
func groupActions(acts []store.Action) []actionGroup {
	var out []actionGroup
	idx := map[[2]string]int{}
	for _, a := range acts {
		k := [2]string{a.Kind, a.Target}
		i, ok := idx[k]
		if !ok {
			i = len(out)
			idx[k] = i
			out = append(out, actionGroup{Kind: a.Kind, Target: a.Target})
		}
		g := &out[i]
		if slices.ContainsFunc(g.Actions, func(b store.Action) bool { return b.ID == a.ID }) {
			continue
		}
		g.Actions = append(g.Actions, a)
		if a.AlertID != "" && !slices.Contains(g.Alerts, a.AlertID) {
			g.Alerts = append(g.Alerts, a.AlertID)
		}
		if a.Reason != "" && !slices.Contains(g.Reasons, a.Reason) {
			g.Reasons = append(g.Reasons, a.Reason)
		}
		g.Admin = g.Admin || a.NeedsAdmin()
	}
	return out
}

// pendingGroups groups an alert's pending actions with the identical
// pending actions of other alerts (same kind, same target).
func (c *Console) pendingGroups(ctx context.Context, own []store.Action) []actionGroup {
	all := slices.Clone(own)
	seen := map[[2]string]bool{}
	for _, a := range own {
		k := [2]string{a.Kind, a.Target}
		if seen[k] {
			continue
		}
		seen[k] = true
		more, err := c.opts.Store.ListActions(ctx, store.ActionQuery{State: store.ActionPendingApproval, Kind: a.Kind, Target: a.Target,
			Limit: maxGroup})
		if err != nil {
			c.opts.Logger.Error("console: identical pending actions", "kind", a.Kind, "target", a.Target, "err", err)
			continue
		}
		all = append(all, more...)
	}
	return groupActions(all)
}

// maxGroup bounds the actions one decision settles.
const maxGroup = 200

// decide approves or rejects a pending action and, with "group" form
// values, the identical pending actions posted with it (same kind and
// target): each is decided through the store, audited on its own, as if
// decided alone. Nothing is decided unless the caller may decide all of
// them; those someone else decided meanwhile are left as they are.
func (c *Console) decide(w http.ResponseWriter, r *http.Request) {
	if !c.sameOriginPost(r) {
		c.fail(w, r, http.StatusForbidden, "This form was posted from another site.", "Use the console's own page.")
		return
	}
	id, decision := r.PathValue("id"), r.PathValue("decision")
	if decision != "approve" && decision != "reject" {
		c.fail(w, r, http.StatusNotFound, fmt.Sprintf("Unknown decision %q.", decision), "Use the approve or reject button.")
		return
	}
	if err := r.ParseForm(); err != nil {
		c.fail(w, r, http.StatusBadRequest, "The form could not be read: "+err.Error(), "Go back, reload the alert and decide again.")
		return
	}
	ids := []string{id}
	for _, g := range r.PostForm["group"] {
		if g != "" && !slices.Contains(ids, g) {
			ids = append(ids, g)
		}
	}
	if len(ids) > maxGroup {
		c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("%d actions in one decision; at most %d.", len(ids), maxGroup), "Reload the alert and decide again.")
		return
	}
	ctx := r.Context()
	acts := make([]store.Action, 0, len(ids))
	for _, aid := range ids {
		act, err := c.opts.Store.GetAction(ctx, aid)
		if errors.Is(err, store.ErrNotFound) {
			c.fail(w, r, http.StatusNotFound, fmt.Sprintf("There is no action %q.", aid), "Reload the alert: the action list may have changed.")
			return
		}
		if err != nil {
			c.fail(w, r, http.StatusInternalServerError, "Reading the action failed: "+err.Error(), "Try again.")
			return
		}
		if len(acts) > 0 && (act.Kind != acts[0].Kind || act.Target != acts[0].Target) {
			c.fail(w, r, http.StatusBadRequest, fmt.Sprintf("Action %s (%s on %s) is not the same action as %s (%s on %s).",
				act.ID, act.Kind, act.Target, acts[0].ID, acts[0].Kind, acts[0].Target), "Decide different actions one by one.")
			return
		}
		if cl, ok := auth.CallerFrom(ctx); ok && cl.Role != auth.RoleAdmin && act.NeedsAdmin() {
			c.fail(w, r, http.StatusForbidden, fmt.Sprintf("Action %s is held because of a %s.", act.Kind, act.Reason),
				"Deciding containment of a protected identity, key or network needs an admin; ask one to log in.")
			return
		}
		acts = append(acts, act)
	}
	approve := decision == "approve"
	note := strings.TrimSpace(r.PostFormValue("note"))
	decided, already := 0, 0
	var conflict error
	for _, act := range acts {
		_, err := c.opts.Store.DecideAction(ctx, act.ID, approve, by(r), note, c.opts.Now())
		switch {
		case errors.Is(err, store.ErrActionState):
			already++
			conflict = err
		case err != nil:
			msg := "Recording the decision failed: " + err.Error()
			if decided > 0 {
				msg += fmt.Sprintf(" (%d of the %d identical actions were decided before it)", decided, len(acts))
			}
			c.fail(w, r, http.StatusInternalServerError, msg, "Reload the alert to see each action's state; then try again.")
			return
		default:
			decided++
		}
	}
	if decided == 0 {
		c.fail(w, r, http.StatusConflict, conflict.Error(), "Someone decided it already; reload the alert to see its state.")
		return
	}
	if approve && c.opts.OnApprove != nil {
		c.opts.OnApprove()
	}
	done := "rejected"
	if approve {
		done = "approved"
	}
	if len(acts) > 1 {
		done += "_group"
	}
	back := alertURL(acts[0].AlertID)
	switch in := r.PostFormValue("incident"); {
	case r.PostFormValue("back") == "incident" && in != "":
		back = incidentURL(in)
	case acts[0].AlertID == "" || r.PostFormValue("back") == "overview":
		back = "/"
	}
	http.Redirect(w, r, back+"?done="+done+"#actions", http.StatusSeeOther) // #nosec G710 -- "/", "/alerts/" or "/incidents/" and a path-escaped id: a path on this origin
}
