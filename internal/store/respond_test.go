package store

import (
	"errors"
	"testing"
	"time"
)

func TestActionsOutbox(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		s := b.open(t)
		ctx := t.Context()
		now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		acts := []Action{
			{ID: "a", Kind: "notify", Target: "principal:u", State: ActionPlanned, CreatedAt: now},
			{ID: "b", Kind: "disable_identity", Target: "u", State: ActionPendingApproval, Reason: "protected"},
		}
		ids, err := s.InsertActions(ctx, acts, now)
		if err != nil || len(ids) != 2 {
			t.Fatalf("insert = %v, %v", ids, err)
		}
		if ids, err := s.InsertActions(ctx, acts, now); err != nil || len(ids) != 0 {
			t.Fatalf("re-insert = %v, %v", ids, err)
		}
		got, err := s.ClaimDueActions(ctx, now, time.Minute, 10)
		if err != nil || len(got) != 1 || got[0].ID != "a" || got[0].Attempts != 1 || got[0].State != ActionDelivering {
			t.Fatalf("claim = %+v, %v", got, err)
		}
		if again, _ := s.ClaimDueActions(ctx, now.Add(time.Second), time.Minute, 10); len(again) != 0 {
			t.Fatalf("claimed under lease: %+v", again)
		}
		// The lease runs out: another claimer takes over; the first is fenced off.
		again, _ := s.ClaimDueActions(ctx, now.Add(2*time.Minute), time.Minute, 10)
		if len(again) != 1 || again[0].Attempts != 2 {
			t.Fatalf("reclaim = %+v", again)
		}
		if ok, err := s.FinishAction(ctx, ActionResult{ID: "a", Attempt: 1, State: ActionDelivered}, now); err != nil || ok {
			t.Fatalf("stale finish applied: %v %v", ok, err)
		}
		if ok, err := s.FinishAction(ctx, ActionResult{ID: "a", Attempt: 2, State: ActionDelivered}, now); err != nil || !ok {
			t.Fatalf("finish: %v %v", ok, err)
		}
		if _, err := s.DecideAction(ctx, "a", true, "x", "", now); !errors.Is(err, ErrActionState) {
			t.Errorf("approve delivered: %v", err)
		}
		if _, err := s.DecideAction(ctx, "zz", true, "x", "", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("approve missing: %v", err)
		}
		rej, err := s.DecideAction(ctx, "b", false, "x", "no", now)
		if err != nil || rej.State != ActionRejected {
			t.Fatalf("reject: %+v %v", rej, err)
		}
		log, err := s.AuditLog(ctx, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		wantKinds := []string{"planned", "planned", "attempted", "attempted", "delivered", "rejected"}
		if len(log) != len(wantKinds) {
			t.Fatalf("audit = %+v", log)
		}
		prev := AuditGenesis
		for i, r := range log {
			if r.Kind != wantKinds[i] || r.Seq != int64(i+1) || r.PrevHash != prev ||
				r.Hash != AuditHash(r.Seq, r.Time, r.Kind, r.ActionID, r.Detail, r.PrevHash) {
				t.Errorf("entry %d = %+v", i, r)
			}
			prev = r.Hash
		}
		if l, _ := s.ListActions(ctx, ActionQuery{State: ActionRejected}); len(l) != 1 || l[0].ID != "b" {
			t.Errorf("list rejected = %+v", l)
		}
		for target, want := range map[string]int{"u": 1, "principal:u": 1, "v": 0, "": 2} {
			if l, _ := s.ListActions(ctx, ActionQuery{Target: target}); len(l) != want {
				t.Errorf("list target %q = %+v, want %d", target, l, want)
			}
		}
	})
}

// TestActionHold: an action's Hold is stored and read back, and migration
// 10 gives actions stored before it (reason only) the Hold their reason
// implies: HoldProtected for "protected …", nothing for any other reason.
func TestActionHold(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := t.Context()
		target := b.target(t)
		s, err := Open(ctx, target, Options{})
		if err != nil {
			t.Fatal(err)
		}
		now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
		if _, err := s.InsertActions(ctx, []Action{
			{ID: "new", Kind: "disable_identity", Target: "u", State: ActionPendingApproval, Reason: "protected principal u", Hold: HoldProtected},
		}, now); err != nil {
			t.Fatal(err)
		}
		if a, err := s.GetAction(ctx, "new"); err != nil || a.Hold != HoldProtected || !a.NeedsAdmin() {
			t.Fatalf("stored Hold: %+v, %v", a, err)
		}
		// Back to version 9, with actions written as version 9 wrote them.
		for _, q := range []string{
			`ALTER TABLE actions DROP COLUMN hold`,
			`DROP TABLE finding_log`, // migration 11
			`DROP TABLE incidents`,   // migration 13
			`DROP TABLE incident_alerts`,
			`DROP TABLE incident_keys`,
			`DROP TABLE incident_aliases`,
			`DROP TABLE citations`,
			`DROP TABLE drill_runs`, // migration 15
			`DELETE FROM schema_migrations WHERE version >= 10`,
		} {
			if _, err := s.db.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		old := map[string]string{
			"prot":  "protected key k-1",
			"net":   "protected network 10.0.0.0/8",
			"rate":  "rate limit: 5 revoke_key actions in the hour before 2025-03-01T12:00:00Z (limit 5/h)",
			"dry":   "dry-run mode; would need approval: protected principal u",
			"plain": "",
		}
		for id, reason := range old {
			if _, err := s.db.ExecContext(ctx, `INSERT INTO actions (id, kind, target, alert_id, playbook, receiver, state, reason, attempts,
	next_attempt, created_at, enqueued_at, updated_at, last_error, payload) VALUES (?, 'revoke_key', 'k-1', 'al', 'pb', 'revoke_key', ?, ?, 0, 0, 0, 0, 0, '', '{}')`,
				id, ActionPendingApproval, reason); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s = openAt(t, target)
		for id, want := range map[string]Hold{"new": HoldProtected, "prot": HoldProtected, "net": HoldProtected, "rate": "", "dry": "", "plain": ""} {
			a, err := s.GetAction(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if a.Hold != want || a.NeedsAdmin() != (want == HoldProtected) {
				t.Errorf("action %s (reason %q): Hold %q, NeedsAdmin %v; want %q", id, a.Reason, a.Hold, a.NeedsAdmin(), want)
			}
		}
	})
}
