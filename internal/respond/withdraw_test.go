package respond

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// withdrawnAlert is a as the alert stage hands it over when withdrawn: its
// finding replaced by the withdrawal citing the late mint.
func withdrawnAlert(a event.Alert, mint string) event.Alert {
	w := event.Finding{Detector: a.Detector, Kind: "token_never_minted_withdrawn", Entity: a.Entity, Time: a.Time,
		Explanation: "its mint arrived late", Evidence: []string{mint}, Withdraws: a.Findings[0].ID()}
	a.Findings = []event.Finding{w}
	a.FindingCount = 0
	a.State = event.AlertWithdrawn
	return a
}

// TestWithdrawCancelsHeldActions: withdrawing an alert cancels its action
// held for approval, leaves the delivered notification (audited as not
// undone) and audits the withdrawal with the finding and the mint.
func TestWithdrawCancelsHeldActions(t *testing.T) {
	rcv := newReceiver(t)
	st := openStore(t, t.TempDir())
	cfg := testConfig(rcv.srv.URL)
	cfg.Protected.Principals = []string{"ceo"}
	h := start(t, st, cfg, time.Minute)
	a := mkAlert("a1", event.EntityPrincipal, "ceo", "terminated_identity", event.SeverityCritical, t0)
	h.send(t, a)
	waitFor(t, "notify", 5*time.Second, func() bool { return rcv.kindCount(KindNotify) == 1 })
	if len(byState(t, st, StatePendingApproval)) != 1 {
		t.Fatal("no action held for approval")
	}
	h.resp.Alert(alert.Withdrawn, withdrawnAlert(a, "mint-7"))
	if err := h.resp.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	if p := byState(t, st, StatePendingApproval); len(p) != 0 {
		t.Errorf("still pending: %+v", p)
	}
	c := byState(t, st, store.ActionCancelled)
	if len(c) != 1 || c[0].Kind != KindDisableIdentity || !strings.Contains(c[0].Reason, "withdrawn") {
		t.Errorf("cancelled = %+v", c)
	}
	recs, err := st.AuditLog(t.Context(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Alert     string   `json:"alert"`
		Cancelled []string `json:"cancelled"`
		NotUndone []string `json:"not_undone"`
		Withdrawn []struct {
			Finding  string   `json:"finding"`
			Evidence []string `json:"evidence"`
		} `json:"withdrawn"`
	}
	n := 0
	for _, r := range recs {
		if r.Kind == "alert_withdrawn" {
			n++
			if err := json.Unmarshal(r.Detail, &d); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n != 1 || d.Alert != "a1" || len(d.Cancelled) != 1 || len(d.NotUndone) != 1 ||
		len(d.Withdrawn) != 1 || d.Withdrawn[0].Finding != a.Findings[0].ID().String() || d.Withdrawn[0].Evidence[0] != "mint-7" {
		t.Errorf("%d alert_withdrawn entries, last %+v", n, d)
	}
	if err := st.CheckAuditHead(t.Context()); err != nil {
		t.Error(err)
	}
}

// TestWithdrawnInSameBatch: an alert raised and withdrawn before the
// responder wrote anything gets no actions at all; another alert in the
// batch keeps its own.
func TestWithdrawnInSameBatch(t *testing.T) {
	st := openStore(t, t.TempDir())
	cfg := testConfig("http://127.0.0.1:1")
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := NewResponder(st, p, ResponderOptions{})
	a := mkAlert("a1", event.EntityPrincipal, "e:1", "terminated_identity", event.SeverityCritical, t0)
	b := mkAlert("b1", event.EntityPrincipal, "e:2", "terminated_identity", event.SeverityCritical, t0)
	r.Alert(alert.Raised, a)
	r.Alert(alert.Raised, b)
	r.Alert(alert.Withdrawn, withdrawnAlert(a, "mint-1"))
	if err := r.Close(); err != nil { // Run never started: Close writes the queue as one batch
		t.Fatal(err)
	}
	acts, err := st.ListActions(t.Context(), store.ActionQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var forA, forB int
	for _, x := range acts {
		switch x.AlertID {
		case "a1":
			forA++
		case "b1":
			forB++
		}
	}
	if forA != 0 || forB == 0 {
		t.Errorf("actions for the withdrawn alert %d (want 0), for the other %d (want some): %+v", forA, forB, acts)
	}
}
