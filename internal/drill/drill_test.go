package drill_test

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/detect/cloudcred"
	"github.com/haechi-sec/haechi/internal/drill"
	"github.com/haechi-sec/haechi/internal/event"
)

var drillNet = netip.MustParsePrefix("198.18.0.0/15")

// Every kind builds events the contract's decoder accepts, every made-up
// id reserved and of its run, every source in the benchmarking range, and
// the expected entity among the ids.
func TestBuildEveryKind(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for _, d := range drill.Defaults() {
		t.Run(d.Name, func(t *testing.T) {
			run := drill.NewRunID(d.Name, now)
			p, err := drill.Build(d, run, now)
			if err != nil {
				t.Fatal(err)
			}
			if p.Entity.Kind == event.EntitySource {
				if a, err := netip.ParseAddr(p.Entity.ID); err != nil || !drillNet.Contains(a) {
					t.Errorf("entity %s is not a drill source", p.Entity)
				}
			} else if !strings.HasPrefix(p.Entity.ID, drill.Prefix+run) && !reservedInShape(p.Entity.ID, run) {
				t.Errorf("entity %s is not the run's", p.Entity)
			}
			dec := decode.NewDecoder()
			var found bool
			for i, line := range bytes.Split(bytes.TrimSpace(p.Body), []byte("\n")) {
				var ev event.Event
				if err := dec.Decode(line, &ev); err != nil {
					t.Fatalf("line %d: %v: %s", i+1, err, line)
				}
				if ev.Time.After(now) {
					t.Errorf("line %d dated after now", i+1)
				}
				ids := []string{ev.User.ID, ev.Token.ID, ev.Token.KeyID, ev.Identity.ID}
				ids = append(ids, ev.Records.IDs...)
				for _, id := range ids {
					// The cloud drill's ARN and key carry the reserved id
					// inside the shapes the cloud detector judges.
					if id != "" && id != drill.CanaryRecord && !strings.HasPrefix(id, drill.Prefix+run) &&
						!(d.Kind == drill.CloudCredential && reservedInShape(id, run)) {
						t.Errorf("line %d: id %q is not reserved for the run", i+1, id)
					}
					found = found || id == p.Entity.ID
				}
				found = found || (p.Entity.Kind == event.EntitySource && ev.Source.IP.String() == p.Entity.ID)
				if ev.Source.IP.IsValid() && !drillNet.Contains(ev.Source.IP) {
					t.Errorf("line %d: source %s outside 198.18.0.0/15", i+1, ev.Source.IP)
				}
			}
			if !found {
				t.Errorf("expected entity %s appears in no event", p.Entity)
			}
		})
	}
	if _, err := drill.Build(drill.Definition{Name: "x", Kind: "nope"}, "r", now); err == nil {
		t.Error("unknown kind built")
	}
	if a, b := drill.NewRunID("x", now), drill.NewRunID("x", now); a == b {
		t.Errorf("two runs share the id %s", a)
	}
}

// reservedInShape: an STS key ("ASIA" and the reserved id) or a role
// session ARN of a reserved role.
func reservedInShape(id, run string) bool {
	return strings.HasPrefix(id, "ASIA"+drill.Prefix+run) ||
		strings.HasPrefix(id, "arn:aws:sts::000000000000:assumed-role/"+drill.Prefix+run+"-role/i-")
}

// The fan-out drill acts as FanoutPrincipals distinct principals from one
// address; the cloud drill's event is a workload session's STS key, which
// the cloud_credential detector judges.
func TestBuildShapes(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	dec := decode.NewDecoder()
	events := func(k drill.Kind) ([]event.Event, drill.Plan) {
		p, err := drill.Build(drill.Definition{Name: string(k), Kind: k}, drill.NewRunID("x", now), now)
		if err != nil {
			t.Fatal(err)
		}
		var out []event.Event
		for _, line := range bytes.Split(bytes.TrimSpace(p.Body), []byte("\n")) {
			var ev event.Event
			if err := dec.Decode(line, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		}
		return out, p
	}
	evs, p := events(drill.SourceFanout)
	users, srcs := map[string]bool{}, map[string]bool{}
	for _, ev := range evs {
		users[ev.User.ID] = true
		srcs[ev.Source.IP.String()] = true
	}
	if len(users) != drill.FanoutPrincipals || len(srcs) != 1 || !srcs[p.Entity.ID] || p.Entity.Kind != event.EntitySource {
		t.Errorf("fan-out: %d principals from %v about %s, want %d from the expected source", len(users), srcs, p.Entity, drill.FanoutPrincipals)
	}
	for u := range users {
		if !slices.Contains(p.Entities, event.EntityKey{Kind: event.EntityPrincipal, ID: u}) {
			t.Errorf("fan-out principal %s is not among the run's entities", u)
		}
	}
	evs, p = events(drill.CloudCredential)
	if len(evs) != 1 || evs[0].Dataset != drill.CloudDataset {
		t.Fatalf("cloud: %d events", len(evs))
	}
	if _, ok := cloudcred.WorkloadSession(&evs[0]); !ok || !strings.HasPrefix(evs[0].Token.ID, "ASIA") || p.Entity != (event.EntityKey{Kind: event.EntityToken, ID: evs[0].Token.ID}) {
		t.Errorf("cloud: user %q key %q about %s: not a workload session's STS key", evs[0].User.ID, evs[0].Token.ID, p.Entity)
	}
	if got := drill.NeedStreams(drill.CloudCredential); !slices.Equal(got, []string{"aws.cloudtrail"}) {
		t.Errorf("cloud needs %v", got)
	}
}

func TestValidate(t *testing.T) {
	for _, c := range []struct {
		d    drill.Definition
		want string
	}{
		{drill.Defaults()[0], ""},
		{drill.Definition{Name: "a b", Kind: drill.CanaryRead, Expect: drill.Expectation{Detectors: []string{"x"}, Within: time.Second}}, "name"},
		{drill.Definition{Name: "a", Kind: "x", Expect: drill.Expectation{Detectors: []string{"x"}, Within: time.Second}}, "kind"},
		{drill.Definition{Name: "a", Kind: drill.CanaryRead, Expect: drill.Expectation{Within: time.Second}}, "expect.detectors"},
		{drill.Definition{Name: "a", Kind: drill.CanaryRead, Expect: drill.Expectation{Detectors: []string{"x"}}}, "expect.within"},
	} {
		err := c.d.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%+v: %v, want %q", c.d, err, c.want)
		}
	}
}

// The runner judges a run by the alerts the sink sees: passed once every
// expected detector and kind arrived about the run's entity (not another's),
// failed naming what is missing, cannot-run without the stream, and a
// failure calls OnFailure.
func TestRunnerVerdicts(t *testing.T) {
	def := drill.Definition{Name: "canary", Kind: drill.CanaryRead, Expect: drill.Expectation{
		Detectors: []string{"canary_record", "scripted_client"}, Kinds: []string{"canary_record_access"}, Within: 300 * time.Millisecond}}
	forged := drill.Definition{Name: "forged", Kind: drill.ForgedToken, Expect: drill.Expectation{Detectors: []string{"token_provenance"}, Within: time.Second}}
	type alertOf func(ent event.EntityKey) []event.Alert
	finding := func(ent event.EntityKey, det, kind string) event.Finding {
		return event.Finding{Detector: det, Kind: kind, Entity: ent}
	}
	for _, c := range []struct {
		name       string
		alerts     alertOf
		want       drill.Status
		wantReason string
	}{
		{"all expected, over two alerts", func(e event.EntityKey) []event.Alert {
			return []event.Alert{
				{ID: "a1", Entity: e, Findings: []event.Finding{finding(e, "canary_record", "canary_record_access")}},
				{ID: "a2", Entity: event.EntityKey{Kind: event.EntitySource, ID: "198.18.0.1"}, Findings: []event.Finding{finding(e, "scripted_client", "scripted")}},
			}
		}, drill.Passed, ""},
		{"one detector missing", func(e event.EntityKey) []event.Alert {
			return []event.Alert{{ID: "a1", Entity: e, Findings: []event.Finding{finding(e, "canary_record", "canary_record_access")}}}
		}, drill.Failed, "alerts a1 came from canary_record; expected detector scripted_client (not running in this configuration: scripted_client"},
		{"wrong kind", func(e event.EntityKey) []event.Alert {
			return []event.Alert{{ID: "a1", Entity: e, Findings: []event.Finding{finding(e, "canary_record", "other"), finding(e, "scripted_client", "s")}}}
		}, drill.Failed, "expected finding kind canary_record_access"},
		{"another entity's alert", func(e event.EntityKey) []event.Alert {
			o := event.EntityKey{Kind: event.EntityPrincipal, ID: "m:1"}
			return []event.Alert{{ID: "a1", Entity: o, Findings: []event.Finding{finding(o, "canary_record", "canary_record_access"), finding(o, "scripted_client", "s")}}}
		}, drill.Failed, "no alert about the drill's entity within 300ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r *drill.Runner
			var failed []drill.Result
			var err error
			r, err = drill.New(drill.Options{Definitions: []drill.Definition{def},
				Inject: func(ctx context.Context, run string, body []byte) error {
					p, err := drill.Build(def, run, time.Now())
					if err != nil {
						return err
					}
					go func() {
						for _, a := range c.alerts(p.Entity) {
							r.Alert(alert.Raised, a)
						}
					}()
					return nil
				},
				Running:    func(d string) bool { return d != "scripted_client" },
				OnFailure:  func(res drill.Result) { failed = append(failed, res) },
				Registerer: prometheus.NewRegistry(),
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Run(t.Context(), "canary")
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != c.want || !strings.Contains(res.Reason, c.wantReason) {
				t.Fatalf("%s %q, want %s %q", res.Status, res.Reason, c.want, c.wantReason)
			}
			if (c.want == drill.Failed) != (len(failed) == 1) {
				t.Errorf("OnFailure called %d times", len(failed))
			}
			if got := r.Results(); len(got) != 1 || got[0].Run != res.Run {
				t.Errorf("results %+v", got)
			}
			if !r.IsDrill(event.Alert{Entity: res.Entity}) || r.IsDrill(event.Alert{Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: drill.Prefix + "spoofed"}}) {
				t.Error("IsDrill does not know the run's entity exactly")
			}
		})
	}

	r, err := drill.New(drill.Options{Definitions: []drill.Definition{forged},
		Inject: func(context.Context, string, []byte) error { t.Error("injected without its stream"); return nil },
		Seen:   func(ds string) bool { return ds != "auth.token" }})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(t.Context(), "forged")
	if err != nil || res.Status != drill.CannotRun || !strings.Contains(res.Reason, "missing stream auth.token") {
		t.Errorf("without auth.token: %+v, %v", res, err)
	}
	if _, err := r.Run(t.Context(), "nope"); !errors.Is(err, drill.ErrUnknown) {
		t.Errorf("unknown drill: %v", err)
	}
}

// After a restart the spool replays runs the runner did not start: the
// entities of drill-marked events are the drill's, those of any other
// event (whatever its ids) are not.
func TestNoteDrillEvents(t *testing.T) {
	r, err := drill.New(drill.Options{Definitions: drill.Defaults(), Inject: func(context.Context, string, []byte) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	drillEv := event.Event{Drill: true, User: event.User{ID: drill.Prefix + "old-user"}, Token: event.Token{ID: drill.Prefix + "old-token", KeyID: drill.Prefix + "old-key"},
		Source: event.Source{IP: netip.MustParseAddr("198.18.7.1")}}
	spoof := event.Event{User: event.User{ID: drill.Prefix + "spoofed-user"}}
	r.NoteDrillEvents([]event.Event{drillEv, spoof})
	for _, c := range []struct {
		ent  event.EntityKey
		want bool
	}{
		{event.EntityKey{Kind: event.EntityPrincipal, ID: drill.Prefix + "old-user"}, true},
		{event.EntityKey{Kind: event.EntityToken, ID: drill.Prefix + "old-token"}, true},
		{event.EntityKey{Kind: event.EntitySigningKey, ID: drill.Prefix + "old-key"}, true},
		{event.EntityKey{Kind: event.EntitySource, ID: "198.18.7.1"}, true},
		{event.EntityKey{Kind: event.EntityPrincipal, ID: drill.Prefix + "spoofed-user"}, false},
		{event.EntityKey{Kind: event.EntitySource, ID: "198.18.7.2"}, false},
	} {
		if got := r.IsDrill(event.Alert{Entity: c.ent}); got != c.want {
			t.Errorf("IsDrill(%s) = %v, want %v", c.ent, got, c.want)
		}
	}
}

// A drill expecting actions passes only once the planner planned each of
// them (dry-run counts, skipped does not) for the alerts about its entity,
// whichever of the alert and its plan the runner hears first; otherwise
// the reason names the missing action, what was planned, and why the
// planner did not plan it.
func TestRunnerActions(t *testing.T) {
	def := drill.Definition{Name: "forged", Kind: drill.ForgedToken, Expect: drill.Expectation{
		Detectors: []string{"token_provenance"}, Actions: []string{"revoke_key", "block_source"}, Within: 300 * time.Millisecond}}
	act := func(kind, state, reason string) drill.PlannedAction {
		return drill.PlannedAction{Kind: kind, Target: "t-" + kind, Playbook: "forged_token", State: state, Reason: reason}
	}
	for _, c := range []struct {
		name       string
		acts       []drill.PlannedAction
		plan       bool // the responder tells the runner
		planFirst  bool // ... before the alert sink hears of the alert
		want       drill.Status
		wantReason []string
	}{
		{"every action, dry-run", []drill.PlannedAction{act("revoke_key", "dry_run", ""), act("block_source", "dry_run", ""), act("notify", "skipped", "no receiver configured (notify)")},
			true, false, drill.Passed, nil},
		{"planned before the alert is heard", []drill.PlannedAction{act("revoke_key", "dry_run", ""), act("block_source", "planned", "")},
			true, true, drill.Passed, nil},
		{"playbook changed: notify only", []drill.PlannedAction{act("notify", "planned", "")}, true, false, drill.Failed,
			[]string{"expected action revoke_key, block_source, planned: notify t-notify (planned)", "revoke_key not planned: why revoke_key", "block_source not planned: why block_source"}},
		{"skipped for want of a receiver", []drill.PlannedAction{act("revoke_key", "dry_run", ""), act("block_source", "skipped", "no receiver configured (block_source)")}, true, false, drill.Failed,
			[]string{"expected action block_source, planned: revoke_key t-revoke_key (dry_run), block_source t-block_source (skipped: no receiver configured (block_source))"}},
		{"nothing planned at all", nil, true, false, drill.Failed, []string{"expected action revoke_key, block_source, planned: none", "revoke_key not planned: why revoke_key"}},
		{"the responder never answered", nil, false, false, drill.Failed, []string{"the responder had planned nothing for alert a1 yet"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var r *drill.Runner
			var explained []string
			var err error
			r, err = drill.New(drill.Options{Definitions: []drill.Definition{def},
				Inject: func(ctx context.Context, run string, body []byte) error {
					p, err := drill.Build(def, run, time.Now())
					if err != nil {
						return err
					}
					a := event.Alert{ID: "a1", Entity: p.Entity, Findings: []event.Finding{{Detector: "token_provenance", Kind: "token_never_minted", Entity: p.Entity}}}
					go func() {
						if c.planFirst {
							r.Planned(a, c.acts, "")
						}
						r.Alert(alert.Raised, a)
						if c.plan && !c.planFirst {
							r.Planned(a, c.acts, "")
						}
					}()
					return nil
				},
				Explain: func(a event.Alert, kind string) string {
					explained = append(explained, a.ID)
					return "why " + kind
				},
				Registerer: prometheus.NewRegistry(),
			})
			if err != nil {
				t.Fatal(err)
			}
			res, err := r.Run(t.Context(), "forged")
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != c.want {
				t.Fatalf("%s %q, want %s", res.Status, res.Reason, c.want)
			}
			for _, w := range c.wantReason {
				if !strings.Contains(res.Reason, w) {
					t.Errorf("reason %q lacks %q", res.Reason, w)
				}
			}
			if len(res.Actions) != len(c.acts) && c.plan {
				t.Errorf("result actions %+v, want %d", res.Actions, len(c.acts))
			}
			for _, a := range res.Actions {
				if a.Alert != "a1" {
					t.Errorf("action %+v not tied to its alert", a)
				}
			}
			if c.want == drill.Failed && c.plan && len(explained) > 0 && explained[0] != "a1" {
				t.Errorf("explained for %v", explained)
			}
		})
	}
}

// A run keeps the alerts about any entity it made up and the findings
// about them; drill findings are counted per detector; other entities'
// are not kept.
func TestRunnerKeepsDetail(t *testing.T) {
	def := drill.Definition{Name: "hijack", Kind: drill.TokenHijack, Expect: drill.Expectation{Detectors: []string{"token_binding"}, Within: time.Second}}
	var r *drill.Runner
	var err error
	r, err = drill.New(drill.Options{Definitions: []drill.Definition{def},
		Inject: func(ctx context.Context, run string, body []byte) error {
			p, err := drill.Build(def, run, time.Now())
			if err != nil {
				return err
			}
			src := p.Entities[len(p.Entities)-1] // the away address
			other := event.EntityKey{Kind: event.EntityPrincipal, ID: "m:1"}
			go func() {
				r.Finding(alert.Scored{Finding: event.Finding{Detector: "geo_novelty", Kind: "new_country", Entity: src}})
				r.Finding(alert.Scored{Finding: event.Finding{Detector: "geo_novelty", Kind: "new_country", Entity: other}})
				r.Alert(alert.Raised, event.Alert{ID: "a-src", Entity: src, Findings: []event.Finding{{Detector: "geo_novelty", Entity: src}}})
				r.Alert(alert.Raised, event.Alert{ID: "a-other", Entity: other, Findings: []event.Finding{{Detector: "geo_novelty", Entity: other}}})
				r.Finding(alert.Scored{Finding: event.Finding{Detector: "token_binding", Kind: "token_rebound", Entity: p.Entity}})
				r.Alert(alert.Raised, event.Alert{ID: "a-tok", Entity: p.Entity, Findings: []event.Finding{{Detector: "token_binding", Entity: p.Entity}}})
			}()
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(t.Context(), "hijack")
	if err != nil || res.Status != drill.Passed {
		t.Fatalf("%+v %v", res, err)
	}
	var ids []string
	for _, a := range res.AlertDetail {
		ids = append(ids, a.ID)
	}
	if !slices.Equal(ids, []string{"a-src", "a-tok"}) || !slices.Equal(res.Alerts, []string{"a-tok"}) {
		t.Errorf("alert detail %v, alerts %v; want [a-src a-tok], [a-tok]", ids, res.Alerts)
	}
	if len(res.Findings) != 2 || res.Findings[0].Detector != "geo_novelty" || res.Findings[1].Detector != "token_binding" {
		t.Errorf("findings %+v", res.Findings)
	}
	if got := r.FoundByDetector(); got["geo_novelty"] != 1 || got["token_binding"] != 1 || len(got) != 2 {
		t.Errorf("FoundByDetector = %v", got)
	}
	// The in-memory results keep the verdict, not the detail.
	if kept := r.Results(); len(kept) != 1 || kept[0].AlertDetail != nil || kept[0].Findings != nil {
		t.Errorf("results keep the detail: %+v", kept)
	}
}

// A run cut short — its context ends, or the runner is stopped — is
// recorded interrupted with the reason, is not a failure, and a stopped
// runner refuses new runs.
func TestRunnerInterrupted(t *testing.T) {
	def := drill.Definition{Name: "canary", Kind: drill.CanaryRead, Expect: drill.Expectation{Detectors: []string{"canary_record"}, Within: time.Minute}}
	var recorded, started []drill.Result
	var mu sync.Mutex
	injected := make(chan struct{}, 2)
	r, err := drill.New(drill.Options{Definitions: []drill.Definition{def},
		Inject:    func(context.Context, string, []byte) error { injected <- struct{}{}; return nil },
		OnStart:   func(res drill.Result) { mu.Lock(); started = append(started, res); mu.Unlock() },
		OnResult:  func(res drill.Result) { mu.Lock(); recorded = append(recorded, res); mu.Unlock() },
		OnFailure: func(res drill.Result) { t.Errorf("interrupted run counted as failed: %+v", res) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	go func() { <-injected; cancel() }()
	res, err := r.Run(ctx, "canary")
	if err == nil || res.Status != drill.Interrupted || !strings.Contains(res.Reason, "context canceled") || !strings.Contains(res.Reason, "no verdict on detection") {
		t.Fatalf("cancelled run: %+v %v", res, err)
	}
	done := make(chan drill.Result)
	go func() { res, _ := r.Run(t.Context(), "canary"); done <- res }()
	<-injected
	r.Stop()
	mu.Lock()
	n := len(recorded)
	mu.Unlock()
	if n != 2 {
		t.Fatal("Stop returned before the run in flight was recorded")
	}
	if res := <-done; res.Status != drill.Interrupted || !strings.Contains(res.Reason, "drills stopped") {
		t.Errorf("stopped run: %+v", res)
	}
	if _, err := r.Run(t.Context(), "canary"); !errors.Is(err, drill.ErrStopped) {
		t.Errorf("run after Stop: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(recorded) != 2 || recorded[0].Status != drill.Interrupted || recorded[1].Status != drill.Interrupted {
		t.Errorf("recorded %+v", recorded)
	}
	if len(started) != 2 || started[0].Status != drill.Running || started[0].Run == "" {
		t.Errorf("started %+v", started)
	}
}

// With Options.Responds, a run that expects no action still waits (within
// its time) for the responder's answer, so its result carries what was
// planned; without an answer it passes when its time runs out.
func TestRunnerWaitsForPlanning(t *testing.T) {
	def := drill.Definition{Name: "canary", Kind: drill.CanaryRead, Expect: drill.Expectation{Detectors: []string{"canary_record"}, Within: 500 * time.Millisecond}}
	for _, answer := range []bool{true, false} {
		var r *drill.Runner
		var err error
		r, err = drill.New(drill.Options{Definitions: []drill.Definition{def}, Responds: true,
			Inject: func(ctx context.Context, run string, body []byte) error {
				p, _ := drill.Build(def, run, time.Now())
				a := event.Alert{ID: "a1", Entity: p.Entity, Findings: []event.Finding{{Detector: "canary_record", Entity: p.Entity}}}
				go func() {
					r.Alert(alert.Raised, a)
					if answer {
						time.Sleep(50 * time.Millisecond)
						r.Planned(a, []drill.PlannedAction{{Kind: "notify", State: "planned"}}, "")
					}
				}()
				return nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		res, err := r.Run(t.Context(), "canary")
		took := time.Since(start)
		if err != nil || res.Status != drill.Passed {
			t.Fatalf("answer %v: %+v %v", answer, res, err)
		}
		if answer && (len(res.Actions) != 1 || took >= 500*time.Millisecond) {
			t.Errorf("answered: actions %+v after %s", res.Actions, took)
		}
		if !answer && took < 500*time.Millisecond {
			t.Errorf("unanswered run decided after %s, before its time", took)
		}
	}
}
