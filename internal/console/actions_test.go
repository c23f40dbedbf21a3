package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// addGroups adds two alerts about principal e:9, each with a pending
// disable_identity on it (one group of two), and an unprotected pending
// disable_identity on e:ceo (identical to the protected act-2).
func (e *env) addGroups(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	p := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:9"}
	if err := e.st.SaveAlerts(ctx, []event.Alert{
		{ID: "al-g1", Time: now.Add(-30 * time.Minute), Entity: p, Severity: event.SeverityHigh, Title: "Bulk export", State: event.AlertOpen, Detector: "bulk"},
		{ID: "al-g2", Time: now.Add(-20 * time.Minute), Entity: p, Severity: event.SeverityHigh, Title: "Bulk export again", State: event.AlertOpen, Detector: "bulk"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.InsertActions(ctx, []store.Action{
		{ID: "act-g1", Kind: "disable_identity", Target: "e:9", AlertID: "al-g1", State: store.ActionPendingApproval, Reason: "approval required", CreatedAt: now},
		{ID: "act-g2", Kind: "disable_identity", Target: "e:9", AlertID: "al-g2", State: store.ActionPendingApproval, Reason: "approval required", CreatedAt: now},
		{ID: "act-g3", Kind: "disable_identity", Target: "e:ceo", AlertID: "al-low", State: store.ActionPendingApproval, Reason: "approval required", CreatedAt: now},
	}, now); err != nil {
		t.Fatal(err)
	}
}

// TestPendingActionsMerged: identical pending actions (same kind, same
// target) show once, with their count and alerts, on the alert page and
// the overview; one decision settles all of them, each audited.
func TestPendingActionsMerged(t *testing.T) {
	e := newEnv(t, true)
	e.addGroups(t)
	sess, csrf := e.login(t, e.analyst)
	ctx := context.Background()

	body := e.do(t, "GET", "/alerts/al-g1", "", nil, sess).Body.String()
	actions := regexp.MustCompile(`(?s)<section id="actions">.*?</section>`).FindString(body)
	for _, s := range []string{`data-actions="act-g1 act-g2"`, "×2", `href="/alerts/al-g2#actions"`, "Approve all 2", "Reject all 2",
		`action="/actions/act-g1/approve"`, `name="group" value="act-g2"`} {
		if !strings.Contains(actions, s) {
			t.Errorf("alert page's actions lack %q:\n%s", s, actions)
		}
	}
	if n := strings.Count(actions, "<tr class=\"action-group\""); n != 1 {
		t.Errorf("%d rows of pending actions, want 1 (merged)", n)
	}
	// On the other alert's page its own action leads the group.
	if body := e.do(t, "GET", "/alerts/al-g2", "", nil, sess).Body.String(); !strings.Contains(body, `data-actions="act-g2 act-g1"`) {
		t.Error("al-g2's page: the group does not lead with its own action")
	}
	over := e.do(t, "GET", "/", "", nil, sess).Body.String()
	if n := strings.Count(over, ">disable_identity e:9</a>"); n != 1 {
		t.Errorf("overview lists disable_identity e:9 %d times, want once", n)
	}
	if !strings.Contains(over, "×2") || !strings.Contains(over, "from 2 alerts") {
		t.Error("overview does not say the approval is merged")
	}

	// Different actions cannot be decided as one.
	w := e.do(t, "POST", "/actions/act-1/approve", "", url.Values{"csrf": {csrf}, "group": {"act-g2"}}, sess)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "is not the same action") {
		t.Errorf("mixed group: %d", w.Code)
	}
	// An analyst cannot decide a group holding a protected action; nothing
	// of it is decided.
	w = e.do(t, "POST", "/actions/act-g3/approve", "", url.Values{"csrf": {csrf}, "group": {"act-2"}}, sess)
	if w.Code != http.StatusForbidden {
		t.Errorf("group with a protected action, as an analyst: %d", w.Code)
	}
	for _, id := range []string{"act-1", "act-g2", "act-g3", "act-2"} {
		if a, _ := e.st.GetAction(ctx, id); a.State != store.ActionPendingApproval {
			t.Errorf("a refused decision changed %s: %s", id, a.State)
		}
	}

	before, _ := e.st.AuditLog(ctx, 0, 1000)
	w = e.do(t, "POST", "/actions/act-g1/approve", "", url.Values{"csrf": {csrf}, "group": {"act-g2", "act-g1"}}, sess)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/alerts/al-g1?done=approved_group#actions" {
		t.Fatalf("approve the group: %d %s %s", w.Code, w.Header().Get("Location"), w.Body)
	}
	for _, id := range []string{"act-g1", "act-g2"} {
		if a, _ := e.st.GetAction(ctx, id); a.State != store.ActionPlanned {
			t.Errorf("%s is %s after the group's approval", id, a.State)
		}
	}
	after, _ := e.st.AuditLog(ctx, 0, 1000)
	approved := map[string]int{}
	for _, r := range after[len(before):] {
		if r.Kind == "approved" && strings.Contains(string(r.Detail), "analyst user") {
			approved[r.ActionID]++
		}
	}
	if len(after)-len(before) != 2 || approved["act-g1"] != 1 || approved["act-g2"] != 1 {
		t.Errorf("audit entries of the group's approval: %v (%d new)", approved, len(after)-len(before))
	}
	if body := e.do(t, "GET", "/alerts/al-g1?done=approved_group", "", nil, sess).Body.String(); !strings.Contains(body, "Identical actions approved") {
		t.Error("no flash after the group's approval")
	}

	// A group some of which was decided meanwhile: the rest is decided;
	// a lone action decided meanwhile is a conflict.
	if _, err := e.st.InsertActions(ctx, []store.Action{
		{ID: "act-h1", Kind: "block_source", Target: "203.0.113.9", AlertID: "al-g1", State: store.ActionPendingApproval, CreatedAt: now},
		{ID: "act-h2", Kind: "block_source", Target: "203.0.113.9", AlertID: "al-g2", State: store.ActionPendingApproval, CreatedAt: now},
	}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.DecideAction(ctx, "act-h2", false, "someone else", "", now); err != nil {
		t.Fatal(err)
	}
	if w := e.do(t, "POST", "/actions/act-h1/reject", "", url.Values{"csrf": {csrf}, "group": {"act-h2"}}, sess); w.Code != http.StatusSeeOther {
		t.Errorf("group with one decided meanwhile: %d %s", w.Code, w.Body)
	}
	if a, _ := e.st.GetAction(ctx, "act-h1"); a.State != store.ActionRejected {
		t.Errorf("act-h1 is %s", a.State)
	}
	if w := e.do(t, "POST", "/actions/act-h2/approve", "", url.Values{"csrf": {csrf}}, sess); w.Code != http.StatusConflict {
		t.Errorf("approving an action rejected already: %d, want 409", w.Code)
	}
	if a, _ := e.st.GetAction(ctx, "act-h2"); a.State != store.ActionRejected {
		t.Errorf("act-h2 is %s", a.State)
	}
}
