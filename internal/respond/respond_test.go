package respond

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/detect/canary"
	"github.com/haechi-sec/haechi/internal/detect/terminated"
	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

const testSecret = "s3cret"

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// receiver is a webhook receiver that verifies signatures and applies each
// idempotency key once.
type receiver struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	applied map[string]int    // key → times answered 2xx
	kinds   map[string]string // key → action kind
	bodies  map[string][]byte
	calls   atomic.Int64
	down    atomic.Bool
	hang    atomic.Bool   // block until the client goes away
	arrived chan struct{} // signalled on every request
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, applied: map[string]int{}, kinds: map[string]string{}, bodies: map[string][]byte{},
		arrived: make(chan struct{}, 1024)}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.calls.Add(1)
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	body, _ := io.ReadAll(req.Body)
	if err := VerifySignature(testSecret, req.Header.Get(HeaderTimestamp), string(body),
		req.Header.Get(HeaderSignature), time.Now(), time.Minute); err != nil {
		r.t.Errorf("receiver: %v", err)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if r.hang.Load() {
		<-req.Context().Done()
		return
	}
	if r.down.Load() {
		http.Error(w, "down", http.StatusInternalServerError)
		return
	}
	key := req.Header.Get(HeaderIdempotency)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.applied[key]++
	r.kinds[key] = req.Header.Get(HeaderActionKind)
	r.bodies[key] = body
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) snapshot() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]int, len(r.applied))
	for k, v := range r.applied {
		m[k] = v
	}
	return m
}

func (r *receiver) kindCount(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, k := range r.kinds {
		if k == kind {
			n++
		}
	}
	return n
}

func testConfig(url string) Config {
	c := DefaultConfig()
	c.Mode = ModeEnforce
	c.Secret = testSecret
	c.Receivers = map[string]Receiver{}
	for _, k := range ActionKinds {
		c.Receivers[k] = Receiver{URL: url, AllowPrivate: true} // httptest listens on loopback
	}
	c.InitialBackoff = Duration(20 * time.Millisecond)
	c.MaxBackoff = Duration(80 * time.Millisecond)
	return c
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(t.Context(), dir, store.Options{AuditKey: testAuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// mkAlert returns an alert of one finding by detector about entity; the
// finding is Immediate for the detectors whose findings are (activity
// after termination, a forged token, a canary read), as the detectors
// emit them.
func mkAlert(id string, kind event.EntityKind, entity, detector string, sev event.Severity, at time.Time) event.Alert {
	immediate := detector == terminated.Name || detector == token.Name || detector == canary.Name
	return event.Alert{ID: id, Time: at, Entity: event.EntityKey{Kind: kind, ID: entity}, Severity: sev,
		Score: 95, Title: "test " + detector, Detector: detector, State: event.AlertOpen,
		Findings: []event.Finding{{Detector: detector, Kind: detector, Entity: event.EntityKey{Kind: kind, ID: entity}, Time: at, Immediate: immediate}}}
}

// harness runs a Responder and a Dispatcher over one store.
type harness struct {
	st     *store.Store
	resp   *Responder
	disp   *Dispatcher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func start(t *testing.T, st *store.Store, cfg Config, lease time.Duration) *harness {
	t.Helper()
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDispatcher(st, cfg, DispatcherOptions{Poll: 20 * time.Millisecond, Lease: lease})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{st: st, disp: d, resp: NewResponder(st, p, ResponderOptions{OnWritten: d.Wake})}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.wg.Add(2)
	go func() { defer h.wg.Done(); _ = h.resp.Run(ctx) }()
	go func() { defer h.wg.Done(); _ = d.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	_ = h.resp.Close()
	_ = h.disp.Close()
	h.cancel()
	h.wg.Wait()
}

func (h *harness) send(t *testing.T, alerts ...event.Alert) {
	t.Helper()
	for _, a := range alerts {
		h.resp.Alert(alert.Raised, a)
	}
	if err := h.resp.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func byState(t *testing.T, st *store.Store, state string) []Action {
	t.Helper()
	acts, err := st.ListActions(t.Context(), store.ActionQuery{State: state, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return acts
}

func TestDefaultConfigValid(t *testing.T) {
	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultConfig()
	bad.Mode = "yolo"
	bad.Playbooks[0].Actions[0].Kind = "nuke"
	bad.Protected.Networks = []string{"10.0.0.0/33"}
	bad.Receivers = map[string]Receiver{"x": {URL: "ftp://x", BodyTemplate: "{{"}}
	bad.Playbooks[0].Actions[1].RefusedOnly = "maybe"
	bad.Playbooks[0].Actions = append(bad.Playbooks[0].Actions, ActionSpec{Kind: KindNotify, RefusedOnly: RefusedApprove})
	err := bad.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	for _, want := range []string{"mode:", "playbooks[0].actions[0].kind:", "protected.networks[0]:", "receivers.x.url:", "receivers.x.body_template:", "secret:",
		`playbooks[0].actions[1].refused_only: unknown value "maybe"`, "playbooks[0].actions[4].refused_only: only revoke_key and block_source"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
}

func TestDefaultConfigNoReceiverSkips(t *testing.T) {
	st := openStore(t, t.TempDir())
	cfg := DefaultConfig()
	cfg.Mode = ModeEnforce
	h := start(t, st, cfg, time.Minute)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0))
	skipped := byState(t, st, StateSkipped)
	if len(skipped) != 2 {
		t.Fatalf("skipped = %+v", skipped)
	}
	for _, a := range skipped {
		if !strings.HasPrefix(a.Reason, ReasonNoReceiver) {
			t.Errorf("reason %q", a.Reason)
		}
	}
}

func TestDeliverSigned(t *testing.T) {
	rcv := newReceiver(t)
	st := openStore(t, t.TempDir())
	h := start(t, st, testConfig(rcv.srv.URL), time.Minute)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0))
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(byState(t, st, StateDelivered)) == 2 })
	id := ActionID("a1", KindDisableIdentity, "u:1")
	if got := rcv.snapshot()[id]; got != 1 {
		t.Fatalf("disable_identity applied %d times", got)
	}
	var body map[string]any
	rcv.mu.Lock()
	_ = json.Unmarshal(rcv.bodies[id], &body)
	rcv.mu.Unlock()
	if body["target"] != "u:1" || body["kind"] != KindDisableIdentity || body["revoke_sessions"] != true {
		t.Errorf("body = %v", body)
	}
	if rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey}); err != nil || rep.Keyed != rep.Entries || rep.Entries == 0 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
}

func TestVerifySignature(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ts := "1700000000"
	sig := Sign([]byte("k"), ts, []byte("{}"))
	if err := VerifySignature("k", ts, "{}", sig, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature("k", ts, "{ }", sig, now, time.Minute); err == nil {
		t.Error("modified body verified")
	}
	if err := VerifySignature("other", ts, "{}", sig, now, time.Minute); err == nil {
		t.Error("wrong secret verified")
	}
	if err := VerifySignature("k", ts, "{}", sig, now.Add(10*time.Minute), time.Minute); err == nil {
		t.Error("replayed request verified")
	}
}

func TestReceiverDownThenRecovers(t *testing.T) {
	rcv := newReceiver(t)
	rcv.down.Store(true)
	st := openStore(t, t.TempDir())
	h := start(t, st, testConfig(rcv.srv.URL), time.Minute)
	var alerts []event.Alert
	for i := range 10 {
		alerts = append(alerts, mkAlert(fmt.Sprintf("a%d", i), event.EntitySource, fmt.Sprintf("198.51.100.%d", i),
			"canary_record", event.SeverityCritical, t0.Add(time.Duration(i)*time.Minute)))
	}
	h.send(t, alerts...)
	waitFor(t, "failed attempts", 5*time.Second, func() bool { return rcv.calls.Load() >= 40 })
	rcv.down.Store(false)
	waitFor(t, "delivery", 10*time.Second, func() bool { return len(byState(t, st, StateDelivered)) == 20 })
	got := rcv.snapshot()
	if len(got) != 20 {
		t.Fatalf("receiver applied %d keys, want 20", len(got))
	}
	for k, n := range got {
		if n != 1 {
			t.Errorf("key %s applied %d times", k, n)
		}
	}
	if rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey}); err != nil {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
}

func TestRestartAfterKillMidDelivery(t *testing.T) {
	rcv := newReceiver(t)
	rcv.hang.Store(true)
	dir := t.TempDir()
	st, err := store.Open(t.Context(), dir, store.Options{AuditKey: testAuditKey})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(rcv.srv.URL)
	cfg.Playbooks = []Playbook{{Name: "p", Match: Match{}, Actions: []ActionSpec{{Kind: KindDisableIdentity}}}}
	h := start(t, st, cfg, 300*time.Millisecond)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0))
	<-rcv.arrived
	// "Kill": the store goes away under the dispatcher, so nothing about
	// the attempt can be recorded.
	_ = st.Close()
	h.stop()
	if len(rcv.snapshot()) != 0 {
		t.Fatal("applied before restart")
	}
	rcv.hang.Store(false)

	st2 := openStore(t, dir)
	if a := byState(t, st2, StateDelivering); len(a) != 1 {
		t.Fatalf("delivering after kill = %+v", a)
	}
	start(t, st2, cfg, 300*time.Millisecond)
	waitFor(t, "delivery after restart", 10*time.Second, func() bool { return len(byState(t, st2, StateDelivered)) == 1 })
	if got := rcv.snapshot(); len(got) != 1 || got[ActionID("a1", KindDisableIdentity, "u:1")] != 1 {
		t.Fatalf("applied = %v", got)
	}
}

func TestRestartResumesUndelivered(t *testing.T) {
	rcv := newReceiver(t)
	rcv.down.Store(true)
	dir := t.TempDir()
	st := openStore(t, dir)
	cfg := testConfig(rcv.srv.URL)
	h := start(t, st, cfg, time.Minute)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0))
	waitFor(t, "attempts", 5*time.Second, func() bool { return rcv.calls.Load() >= 2 })
	h.stop()
	_ = st.Close()
	rcv.down.Store(false)
	st2 := openStore(t, dir)
	start(t, st2, cfg, time.Minute)
	waitFor(t, "delivery after restart", 10*time.Second, func() bool { return len(byState(t, st2, StateDelivered)) == 2 })
	for k, n := range rcv.snapshot() {
		if n != 1 {
			t.Errorf("key %s applied %d times", k, n)
		}
	}
}

func TestProtectedPrincipalNeedsApproval(t *testing.T) {
	rcv := newReceiver(t)
	st := openStore(t, t.TempDir())
	cfg := testConfig(rcv.srv.URL)
	cfg.Protected.Principals = []string{"ceo"}
	h := start(t, st, cfg, time.Minute)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "ceo", "terminated_identity", event.SeverityCritical, t0))
	waitFor(t, "notify", 5*time.Second, func() bool { return rcv.kindCount(KindNotify) == 1 })
	pend := byState(t, st, StatePendingApproval)
	if len(pend) != 1 || pend[0].Kind != KindDisableIdentity || !strings.Contains(pend[0].Reason, "protected principal ceo") {
		t.Fatalf("pending = %+v", pend)
	}
	time.Sleep(100 * time.Millisecond)
	if rcv.kindCount(KindDisableIdentity) != 0 {
		t.Fatal("protected principal disabled automatically")
	}
	if _, err := st.DecideAction(t.Context(), pend[0].ID, true, "alice", "confirmed", time.Now()); err != nil {
		t.Fatal(err)
	}
	h.disp.Wake()
	waitFor(t, "approved delivery", 5*time.Second, func() bool { return rcv.kindCount(KindDisableIdentity) == 1 })
	if _, err := st.DecideAction(t.Context(), pend[0].ID, false, "bob", "", time.Now()); !errors.Is(err, store.ErrActionState) {
		t.Errorf("second decision: %v", err)
	}
}

func TestRateLimitDivertsToApproval(t *testing.T) {
	rcv := newReceiver(t)
	st := openStore(t, t.TempDir())
	cfg := testConfig(rcv.srv.URL)
	h := start(t, st, cfg, time.Minute)
	for i := range 21 {
		h.send(t, mkAlert(fmt.Sprintf("a%d", i), event.EntityPrincipal, fmt.Sprintf("u:%d", i),
			"terminated_identity", event.SeverityCritical, t0.Add(time.Duration(i)*2*time.Minute)))
	}
	waitFor(t, "20 disablements", 10*time.Second, func() bool { return rcv.kindCount(KindDisableIdentity) == 20 })
	pend := byState(t, st, StatePendingApproval)
	if len(pend) != 1 || pend[0].Target != "u:20" || !strings.HasPrefix(pend[0].Reason, "rate limit") {
		t.Fatalf("pending = %+v", pend)
	}
	// An hour of event time later the limit has room again.
	h.send(t, mkAlert("late", event.EntityPrincipal, "u:late", "terminated_identity", event.SeverityCritical, t0.Add(2*time.Hour)))
	waitFor(t, "later disablement", 5*time.Second, func() bool { return rcv.kindCount(KindDisableIdentity) == 21 })
}

func TestDryRunNeverDelivers(t *testing.T) {
	rcv := newReceiver(t)
	st := openStore(t, t.TempDir())
	cfg := testConfig(rcv.srv.URL)
	cfg.Mode = ModeDryRun
	h := start(t, st, cfg, time.Minute)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0))
	waitFor(t, "notify", 5*time.Second, func() bool { return rcv.kindCount(KindNotify) == 1 })
	time.Sleep(100 * time.Millisecond)
	if rcv.kindCount(KindDisableIdentity) != 0 {
		t.Fatal("dry-run delivered containment")
	}
	if d := byState(t, st, StateDryRun); len(d) != 1 || d[0].Kind != KindDisableIdentity {
		t.Fatalf("dry_run = %+v", d)
	}
}

func TestModeOffPlansNothing(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Mode = ModeOff
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if acts := p.Plan(mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0)); len(acts) != 0 {
		t.Fatalf("planned %+v", acts)
	}
}

func TestPlannerTargetsAndEscalation(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Protected.Networks = []string{"10.0.0.0/8"}
	cfg.Protected.Keys = []string{"prod-root"}
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	forged := mkAlert("f1", event.EntitySigningKey, "k1", "token_provenance", event.SeverityCritical, t0)
	forged.Findings[0].Kind = "token_never_minted"
	acts := p.Plan(forged)
	if len(acts) != 2 || acts[0].Kind != KindRevokeKey || acts[0].Target != "k1" || acts[1].Kind != KindNotify {
		t.Fatalf("forged token: %+v", acts)
	}
	if again := p.Plan(forged); len(again) != 0 {
		t.Fatalf("re-planned: %+v", again)
	}
	prot := mkAlert("f2", event.EntitySigningKey, "prod-root", "token_provenance", event.SeverityCritical, t0)
	prot.Findings[0].Kind = "token_unknown_key"
	if a := p.Plan(prot); a[0].State != StatePendingApproval {
		t.Fatalf("protected key: %+v", a[0])
	}
	var exp []string
	for i := range 3 {
		acts := p.Plan(mkAlert(fmt.Sprintf("c%d", i), event.EntitySource, "203.0.113.9", "canary_record", event.SeverityCritical, t0))
		var pl Payload
		_ = json.Unmarshal(acts[0].Payload, &pl)
		exp = append(exp, pl.Expiry)
	}
	if strings.Join(exp, ",") != "1d,2d,4d" {
		t.Errorf("escalation = %v", exp)
	}
	a := p.Plan(mkAlert("c9", event.EntitySource, "10.1.2.3", "canary_record", event.SeverityCritical, t0))
	if a[0].State != StatePendingApproval || !strings.Contains(a[0].Reason, "protected network") {
		t.Errorf("protected network: %+v", a[0])
	}
	// Behavioural: notify below critical, contain at critical.
	if a := p.Plan(mkAlert("b1", event.EntitySource, "198.51.100.1", "source_fanout", event.SeverityHigh, t0)); len(a) != 1 || a[0].Kind != KindNotify {
		t.Errorf("behavioural high: %+v", a)
	}
	if a := p.Plan(mkAlert("b2", event.EntitySource, "198.51.100.1", "source_fanout", event.SeverityCritical, t0)); len(a) != 2 || a[1].Kind != KindBlockSource {
		t.Errorf("behavioural critical: %+v", a)
	}
}

func TestAuditTamperDetected(t *testing.T) {
	rcv := newReceiver(t)
	st := openStore(t, t.TempDir())
	h := start(t, st, testConfig(rcv.srv.URL), time.Minute)
	h.send(t, mkAlert("a1", event.EntityPrincipal, "u:1", "terminated_identity", event.SeverityCritical, t0))
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(byState(t, st, StateDelivered)) == 2 })
	h.stop()
	if rep, err := VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey}); err != nil || rep.Keyed != rep.Entries || rep.Entries == 0 {
		t.Fatalf("VerifyAudit = %+v, %v", rep, err)
	}
	var buf bytes.Buffer
	if err := ExportAudit(t.Context(), st, &buf); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) < 7 { // the alert, then 2 × planned, attempted, delivered
		t.Fatalf("audit has %d entries:\n%s", len(lines), buf.String())
	}
	var kinds []string
	for _, l := range lines {
		var r struct{ Kind string }
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		kinds = append(kinds, r.Kind)
	}
	if kinds[0] != "alert" || kinds[1] != "planned" || kinds[len(kinds)-1] != "delivered" {
		t.Errorf("kinds = %v", kinds)
	}

	// Flip one byte of entry 3's detail directly in the database.
	db, err := sql.Open("sqlite", "file:"+st.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var detail string
	if err := db.QueryRow("SELECT detail FROM audit WHERE seq = 3").Scan(&detail); err != nil {
		t.Fatal(err)
	}
	b := []byte(detail)
	b[len(b)/2] ^= 0x01
	if _, err := db.Exec("UPDATE audit SET detail = ? WHERE seq = 3", string(b)); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyAudit(t.Context(), st, VerifyOptions{Key: testAuditKey})
	var ab *AuditBreak
	if !errors.As(err, &ab) || ab.Seq != 3 || ab.Problem != ProblemModified || !strings.Contains(err.Error(), "entry 3") {
		t.Fatalf("VerifyAudit after tamper: %v", err)
	}
	buf.Reset()
	if err := ExportAudit(t.Context(), st, &buf); err != nil {
		t.Fatalf("export of tampered log: %v", err)
	}
}

func TestUpdatedOnlyWhenSeverityRises(t *testing.T) {
	st := openStore(t, t.TempDir())
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Mode = ModeDryRun
	p, _ := NewPlanner(cfg)
	r := NewResponder(st, p, ResponderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	defer func() { cancel(); <-done }()
	a := mkAlert("b", event.EntitySource, "198.51.100.7", "source_fanout", event.SeverityHigh, t0)
	r.Alert(alert.Raised, a)
	r.Alert(alert.Updated, a)
	a.Severity = event.SeverityCritical
	r.Alert(alert.Updated, a)
	if err := r.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	acts, _ := st.ListActions(t.Context(), store.ActionQuery{})
	if len(acts) != 2 { // notify, then block_source at critical
		t.Fatalf("actions = %+v", acts)
	}
}

// An update of the same severity and detector/kind whose new findings name
// another related source blocks that source too, live: the alert grows
// (docs/response.md), and the block must not wait for a restart or a replay
// to plan the alert again.
func TestUpdatedBlocksNewRelatedSource(t *testing.T) {
	st := openStore(t, t.TempDir())
	recv := newReceiver(t)
	h := start(t, st, testConfig(recv.srv.URL), time.Minute)
	forged := mkAlert("f1", event.EntitySigningKey, "k1", "token_provenance", event.SeverityCritical, t0)
	forged.Findings[0].Kind = "token_never_minted"
	forged.Findings[0].Related = []event.EntityKey{{Kind: event.EntitySource, ID: "203.0.113.7"}}
	h.resp.Alert(alert.Raised, forged)
	// Same severity, same detector and kind: only the related source is new.
	forged.Findings = append(forged.Findings, event.Finding{Detector: "token_provenance", Kind: "token_never_minted",
		Entity: forged.Entity, Time: t0.Add(time.Second),
		Related: []event.EntityKey{{Kind: event.EntitySource, ID: "198.51.100.9"}}})
	forged.FindingCount = 2
	h.resp.Alert(alert.Updated, forged)
	// A repeat of the same update plans nothing more.
	h.resp.Alert(alert.Updated, forged)
	if err := h.resp.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	acts, err := st.ListActions(t.Context(), store.ActionQuery{Kind: KindBlockSource})
	if err != nil {
		t.Fatal(err)
	}
	var targets []string
	for _, a := range acts {
		targets = append(targets, a.Target)
	}
	slices.Sort(targets)
	if want := []string{"198.51.100.9", "203.0.113.7"}; !slices.Equal(targets, want) {
		t.Fatalf("block_source targets = %v, want %v", targets, want)
	}
	id := ActionID("f1", KindBlockSource, "198.51.100.9")
	waitFor(t, "the new source's block delivered", 5*time.Second, func() bool { return recv.snapshot()[id] == 1 })
}

func TestConfigYAML(t *testing.T) {
	src := `
mode: enforce
secret_env: HAECHI_RESPOND_SECRET
max_age: 2d
receivers:
  notify: {type: slack, url: "https://hooks.example/x"}
playbooks:
  - name: p
    match: {min_severity: high, detectors: [canary_record], entity_kinds: [source]}
    actions: [{kind: block_source, expiry: 1h, receiver: notify}]
protected: {networks: [10.0.0.0/8]}
rate_limits: {block_source: 3}
`
	var c Config
	if err := yaml.Unmarshal([]byte(src), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.MaxAge.D() != 48*time.Hour || c.Playbooks[0].Actions[0].Expiry.D() != time.Hour || c.Receivers["notify"].Type != ReceiverSlack {
		t.Fatalf("decoded %+v", c)
	}
}

// A forged-token alert is about the key; the sources its findings name as
// related are blocked too — once each, up to the cap, as the alert grows.
func TestPlannerRelatedSources(t *testing.T) {
	p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	forged := mkAlert("f1", event.EntitySigningKey, "k1", "token_provenance", event.SeverityCritical, t0)
	forged.Findings[0].Kind = "token_never_minted"
	forged.Findings[0].Related = []event.EntityKey{{Kind: event.EntitySource, ID: "203.0.113.7"}, {Kind: event.EntityPrincipal, ID: "m:1"}}
	kinds := func(acts []Action) string {
		var s []string
		for _, a := range acts {
			s = append(s, a.Kind+":"+a.Target)
		}
		return strings.Join(s, " ")
	}
	if got := kinds(p.Plan(forged)); got != "revoke_key:k1 block_source:203.0.113.7 notify:key:k1" {
		t.Fatalf("first plan: %s", got)
	}
	// The alert grows: a second source appears, and many more beyond the cap.
	for i := range 40 {
		forged.Findings = append(forged.Findings, event.Finding{Kind: "token_never_minted",
			Related: []event.EntityKey{{Kind: event.EntitySource, ID: fmt.Sprintf("198.51.100.%d", i)}}})
	}
	acts := p.Plan(forged)
	if len(acts) != MaxRelatedTargets-1 || acts[0].Target != "198.51.100.0" {
		t.Fatalf("second plan: %d actions: %s", len(acts), kinds(acts))
	}
}

func TestPlaybookTagsAndPrefixes(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1")
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rule := func(id string, sev event.Severity, tags ...string) event.Alert {
		a := mkAlert(id, event.EntityPrincipal, "e:1", "rule:bulk_export", sev, t0)
		a.Findings[0].Tags = tags
		return a
	}
	tests := []struct {
		name  string
		alert event.Alert
		want  []string
	}{
		{"a rule alert is notified (rule:* prefix)", rule("r1", event.SeverityHigh), []string{KindNotify}},
		{"critical without the contain tag: notify only", rule("r2", event.SeverityCritical, "attack.t1530"), []string{KindNotify}},
		{"critical with the contain tag: contained", rule("r3", event.SeverityCritical, "attack.t1530", "haechi.contain"), []string{KindNotify, KindDisableIdentity}},
		{"not a rule", mkAlert("x", event.EntityPrincipal, "e:1", "rulez", event.SeverityCritical, t0), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, a := range p.Plan(tt.alert) {
				got = append(got, a.Kind)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
	bad := testConfig("http://127.0.0.1:1")
	bad.Playbooks = []Playbook{{Name: "x", Match: Match{Tags: []string{"*"}}, Actions: []ActionSpec{{Kind: KindNotify}}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "playbooks[0].match.tags[0]") {
		t.Errorf("a bare * tag: %v", err)
	}
}

// After a restart the planner resumes from the outbox: the rate limit
// still counts the hour's automatic actions, already planned actions are
// not planned again, and blocks keep escalating.
func TestPlannerRestoresAcrossRestart(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, t.TempDir())
	cfg := testConfig("http://127.0.0.1:1")
	p1, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var acts []Action
	for i := range 20 {
		acts = append(acts, p1.Plan(mkAlert(fmt.Sprintf("t%d", i), event.EntityPrincipal, fmt.Sprintf("e:%d", i),
			"terminated_identity", event.SeverityCritical, t0.Add(time.Duration(i)*time.Minute)))...)
	}
	acts = append(acts, p1.Plan(mkAlert("c1", event.EntitySource, "203.0.113.9", "canary_record", event.SeverityCritical, t0))...)
	if _, err := st.InsertActions(ctx, acts, time.Now()); err != nil {
		t.Fatal(err)
	}

	p2, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n, err := p2.RestoreFrom(ctx, st)
	if err != nil || n != len(acts) {
		t.Fatalf("RestoreFrom = %d, %v; want %d", n, err, len(acts))
	}
	if again := p2.Plan(mkAlert("t3", event.EntityPrincipal, "e:3", "terminated_identity", event.SeverityCritical, t0.Add(3*time.Minute))); len(again) != 0 {
		t.Errorf("an action already in the outbox was planned again: %+v", again)
	}
	a := p2.Plan(mkAlert("t21", event.EntityPrincipal, "e:21", "terminated_identity", event.SeverityCritical, t0.Add(30*time.Minute)))
	if len(a) == 0 || a[0].Kind != KindDisableIdentity || a[0].State != StatePendingApproval || !strings.Contains(a[0].Reason, "rate limit") {
		t.Errorf("the 21st disablement after a restart: %+v", a)
	}
	b := p2.Plan(mkAlert("c2", event.EntitySource, "203.0.113.9", "canary_record", event.SeverityCritical, t0.Add(time.Hour)))
	var pl Payload
	if len(b) == 0 || json.Unmarshal(b[0].Payload, &pl) != nil || pl.Expiry != "2d" || pl.Repeat != 1 {
		t.Errorf("block after a restart did not escalate: %+v (payload %+v)", b, pl)
	}
}

// A suppressed entity's alert is audited as alert_suppressed and nothing
// is planned for it; feedback and suppressions are in the audit chain.
func TestSuppressionStopsResponse(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, t.TempDir())
	now := time.Now().UTC()
	sp, err := st.AddSuppression(ctx, store.Suppression{Entity: event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.9"},
		Until: now.Add(time.Hour), Reason: "pen test", By: "alice", Created: now})
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	r := NewResponder(st, p, ResponderOptions{Suppressions: NewSuppressions(st)})
	go r.Run(ctx)
	r.Alert(alert.Raised, mkAlert("c1", event.EntitySource, "203.0.113.9", "canary_record", event.SeverityCritical, t0))
	r.Alert(alert.Raised, mkAlert("c2", event.EntitySource, "203.0.113.10", "canary_record", event.SeverityCritical, t0))
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	acts, err := st.ListActions(ctx, store.ActionQuery{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range acts {
		if a.AlertID == "c1" {
			t.Errorf("planned %s for a suppressed alert", a.Kind)
		}
	}
	if len(acts) == 0 {
		t.Error("nothing planned for the alert that is not suppressed")
	}
	log, err := st.AuditLog(ctx, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, e := range log {
		kinds = append(kinds, e.Kind)
		if e.Kind == "alert_suppressed" && !strings.Contains(string(e.Detail), sp.ID) {
			t.Errorf("alert_suppressed does not name the suppression: %s", e.Detail)
		}
	}
	if !slices.Contains(kinds, "suppression") || !slices.Contains(kinds, "alert_suppressed") || !slices.Contains(kinds, "alert") {
		t.Errorf("audit kinds %v", kinds)
	}
	if err := st.RemoveSuppression(ctx, sp.ID, "alice", now); err != nil {
		t.Fatal(err)
	}
	if err := st.RemoveSuppression(ctx, sp.ID, "alice", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second removal: %v", err)
	}
	if list, _ := st.ListSuppressions(ctx, now, false); len(list) != 0 {
		t.Errorf("lifted suppression still in force: %+v", list)
	}
}

// A suppression of a finding kind makes the alert stage's findings of that
// kind weightless, and never stops response.
func TestSuppressFinding(t *testing.T) {
	ctx := t.Context()
	st := openStore(t, t.TempDir())
	now := time.Now().UTC()
	e := event.EntityKey{Kind: event.EntityPrincipal, ID: "p:partner"}
	if _, err := st.AddSuppression(ctx, store.Suppression{Entity: e, Detector: "off_hours", Kind: "off_hours_access",
		Until: now.Add(time.Hour), Reason: "fp", By: "ann", Created: now}); err != nil {
		t.Fatal(err)
	}
	s := NewSuppressions(st)
	off := event.Finding{Detector: "off_hours", Kind: "off_hours_access", Entity: e}
	if id, ok := s.SuppressFinding(&off); !ok || id == "" {
		t.Error("the suppressed kind is not suppressed")
	}
	route := event.Finding{Detector: "peer_route", Kind: "uncommon_route", Entity: e}
	if _, ok := s.SuppressFinding(&route); ok {
		t.Error("another kind is suppressed")
	}
	if _, ok := s.Match(ctx, event.Alert{Entity: e, Detector: "off_hours", Findings: []event.Finding{off}}); ok {
		t.Error("a finding-kind suppression stopped response")
	}
}

// What a stopping serve does: the responder's Close writes the last
// alerts' actions, the dispatcher's Drain delivers them before Close — with
// no poll and no wake-up to help (the poll is an hour).
func TestDrainDeliversWhatCloseWrote(t *testing.T) {
	rcv := newReceiver(t)
	st := openStore(t, t.TempDir())
	cfg := testConfig(rcv.srv.URL)
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewDispatcher(st, cfg, DispatcherOptions{Poll: time.Hour, Lease: time.Minute, Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	resp := NewResponder(st, p, ResponderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runDone := make(chan struct{})
	go func() { _ = d.Run(ctx); close(runDone) }()
	// Run's first pass, with nothing due, is over once Drain returns.
	if err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		resp.Alert(alert.Raised, mkAlert(fmt.Sprintf("a%d", i), event.EntityPrincipal, fmt.Sprintf("u:%d", i),
			"terminated_identity", event.SeverityCritical, t0.Add(time.Duration(i)*time.Minute)))
	}
	if err := resp.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(byState(t, st, StateDelivered)); n != 0 {
		t.Fatalf("%d delivered before Drain: the test proves nothing", n)
	}
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	defer dcancel()
	if err := d.Drain(dctx); err != nil {
		t.Fatal(err)
	}
	if got := len(byState(t, st, StateDelivered)); got != 10 {
		t.Errorf("after Drain: %d delivered, want 10 (5 alerts × disable_identity + notify)", got)
	}
	_ = d.Close()
	<-runDone
	// Drain on a stopped dispatcher says so instead of waiting.
	if err := d.Drain(context.Background()); err == nil {
		t.Error("Drain after Close: no error")
	}
}

// TestPlanHold: the planner marks an action HoldProtected exactly when the
// guardrails hold it for a protected principal, key or network — where
// its reason begins with "protected ", the rule deciding it needed an
// admin before there was a Hold — and not for a rate limit, a dry run or a
// missing receiver that would have held it.
func TestPlanHold(t *testing.T) {
	alerts := []event.Alert{
		mkAlert("p", event.EntityPrincipal, "ceo", "terminated_identity", event.SeverityCritical, t0),
		mkAlert("n", event.EntitySource, "10.1.2.3", "canary_record", event.SeverityCritical, t0),
		mkAlert("s", event.EntitySource, "203.0.113.9", "canary_record", event.SeverityCritical, t0),
	}
	for i := range 3 {
		alerts = append(alerts, mkAlert(fmt.Sprintf("r%d", i), event.EntityPrincipal, fmt.Sprintf("e:%d", i), "terminated_identity", event.SeverityCritical, t0))
	}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want int // actions with HoldProtected
	}{
		{"enforce", func(*Config) {}, 2},
		{"dry-run", func(c *Config) { c.Mode = ModeDryRun }, 0},
		{"no receivers", func(c *Config) { c.Receivers = nil }, 0},
	} {
		cfg := testConfig("http://127.0.0.1:1")
		cfg.Protected.Principals = []string{"ceo"}
		cfg.Protected.Networks = []string{"10.0.0.0/8"}
		cfg.RateLimits[KindDisableIdentity] = 1
		tc.edit(&cfg)
		p, err := NewPlanner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		held := 0
		for _, a := range alerts {
			for _, act := range p.Plan(a) {
				if act.NeedsAdmin() != strings.HasPrefix(act.Reason, "protected ") {
					t.Errorf("%s: %s %s: Hold %q, reason %q", tc.name, act.Kind, act.Target, act.Hold, act.Reason)
				}
				if act.Hold == store.HoldProtected {
					held++
				}
			}
		}
		if held != tc.want {
			t.Errorf("%s: %d actions held as protected, want %d", tc.name, held, tc.want)
		}
	}
}

// Close returns while the store keeps failing: Run stops retrying the
// actions it holds after a few more tries once Close is called, though its
// context ends only after Close returns (as a lifecycle cancels a part's run
// after its stop). It used to retry until that context ended: forever.
func TestCloseWithFailingStore(t *testing.T) {
	st := openStore(t, t.TempDir())
	cfg := testConfig("http://127.0.0.1:1")
	cfg.Mode = ModeDryRun
	p, _ := NewPlanner(cfg)
	r := NewResponder(st, p, ResponderOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	if err := st.Close(); err != nil { // every write fails from now on
		t.Fatal(err)
	}
	r.Alert(alert.Raised, mkAlert("b", event.EntitySource, "198.51.100.7", "source_fanout", event.SeverityCritical, t0))
	time.Sleep(200 * time.Millisecond) // Run is retrying the batch
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close is still waiting for Run, which retries a failing store until its context ends")
	}
	cancel()
	<-done
}

// A privileged identity's takeover alert (about the principal, its
// findings naming the attacker's address and session token as related)
// ends the session and blocks the source automatically — both
// reversible — while disabling the administrator waits for approval,
// held like a protected principal. An ordinary identity's critical
// behavioural alert waits for approval too, but as an analyst's decision
// (TestPlanBehaviouralContainment), not held as protected.
func TestPrivilegedTakeoverContainedWithoutDisabling(t *testing.T) {
	p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	a := mkAlert("p1", event.EntityPrincipal, "e:9001", "privileged_identity", event.SeverityHigh, t0)
	a.Findings[0].Privileged = true
	a.Findings[0].Entity = event.EntityKey{Kind: event.EntityPrincipal, ID: "e:9001"}
	a.Findings[0].Related = []event.EntityKey{{Kind: event.EntitySource, ID: "45.77.1.9"}, {Kind: event.EntityToken, ID: "tk-evil"}}
	got := map[string]Action{}
	for _, act := range p.Plan(a) {
		got[act.Kind] = act
	}
	for kind, target := range map[string]string{KindRevokeToken: "tk-evil", KindBlockSource: "45.77.1.9"} {
		if act, ok := got[kind]; !ok || act.Target != target || act.State != StatePlanned {
			t.Errorf("%s: %+v, want planned on %s", kind, act, target)
		}
	}
	if d := got[KindDisableIdentity]; d.State != StatePendingApproval || d.Hold != store.HoldProtected || !strings.Contains(d.Reason, "privileged principal e:9001") {
		t.Errorf("disable_identity: %+v, want pending approval (privileged principal)", d)
	}

	o := mkAlert("o1", event.EntityPrincipal, "e:1", "record_volume", event.SeverityCritical, t0)
	o.Findings[0].Entity = event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1"}
	for _, act := range p.Plan(o) {
		if act.Kind == KindDisableIdentity && (act.State != StatePendingApproval || act.Hold != "") {
			t.Errorf("ordinary identity's disable_identity: %+v, want pending an analyst's approval", act)
		}
	}
}

// TestRefusedOnlyKeyRevocationWaits: the inline check reads a JWT's kid
// before anything checks its signature, so an anonymous client can present
// a junk token naming a live key and be refused. Evidence made only of
// such refusals (token.TagRefusedOnly) must not revoke the key — every
// genuine token it signed would then be refused — without a person's
// decision; the forged token's own revocation goes ahead, and the source's
// block waits too (TestRefusedOnlySourceBlock). A key whose forged tokens
// were served (fail-open, grace) is revoked at once as before.
func TestRefusedOnlyKeyRevocationWaits(t *testing.T) {
	p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		tags    []string
		revoke  string
		posture bool
	}{
		{"refused only", []string{token.TagRefusedOnly}, StatePendingApproval, false},
		{"served", nil, StatePlanned, false},
		// A posture finding about the key from another detector is not
		// evidence that its tokens were served.
		{"refused only, with posture", []string{token.TagRefusedOnly}, StatePendingApproval, true},
	} {
		block := tc.revoke
		a := mkAlert("f-"+tc.name, event.EntitySigningKey, "k-live-"+tc.name, token.Name, event.SeverityCritical, t0)
		a.Findings[0].Kind = token.KindNeverMinted
		a.Findings[0].Tags = tc.tags
		a.Findings[0].Related = []event.EntityKey{{Kind: event.EntitySource, ID: "198.51.100.10"}}
		if tc.posture {
			a.Findings = append(a.Findings, event.Finding{Detector: "key_posture", Kind: "key_posture", Entity: a.Entity, Time: t0})
		}
		acts := p.Plan(a)
		var got []string
		for _, act := range acts {
			got = append(got, act.Kind+"="+string(act.State))
			if act.Kind == KindRevokeKey && act.State != tc.revoke {
				t.Errorf("%s: revoke_key %s (%s), want %s", tc.name, act.State, act.Reason, tc.revoke)
			}
			if act.Kind == KindBlockSource && act.State != block {
				t.Errorf("%s: block_source %s (%s), want %s", tc.name, act.State, act.Reason, block)
			}
			if act.Kind == KindRevokeToken && act.State != StatePlanned {
				t.Errorf("%s: revoke_token %s (%s), want planned", tc.name, act.State, act.Reason)
			}
		}
		if !slices.ContainsFunc(acts, func(a Action) bool { return a.Kind == KindRevokeKey }) {
			t.Errorf("%s: no revoke_key among %v", tc.name, got)
		}
	}
}
