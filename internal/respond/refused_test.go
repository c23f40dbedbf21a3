package respond

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestRefusedOnlySourceBlock runs token_provenance over a carrier NAT's
// traffic — 200 customers' genuine sessions, minted and served, from one
// address — and the forged_token playbook over the alert about the signing
// key the forger behind the same NAT claims.
//
//   - Hard-benign: every forged token was refused by the inline check.
//     Nothing was exposed and the check refuses the next ones, while a
//     day-long block of the address would shut out the 200 customers:
//     block_source (and revoke_key) wait for a person's approval.
//   - Attack: one forged token got through (graced as very new, or served
//     while haechi was unreachable and the gateway failed open): the
//     forger is past the check, so the block and the key's revocation go
//     ahead at once, as without the check.
//   - Opt-out: the playbook's refused_only: contain blocks at once.
func TestRefusedOnlySourceBlock(t *testing.T) {
	t0 := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	nat := netip.MustParseAddr("100.64.12.34")
	const kid = "auth-2026"
	src := event.Source{IP: nat, Country: "KR", ASN: 17858}
	base := []event.Event{
		{ID: "inv", Time: t0.Add(-72 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: kid, Status: "active"}},
		// Watching began two days ago: tokens claiming a later issue
		// time were minted while haechi watched.
		{ID: "warm", Time: t0.Add(-48 * time.Hour), Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
			Token: event.Token{ID: "tk-warm", KeyID: kid, IssuedAt: t0.Add(-48 * time.Hour), ExpiresAt: t0.Add(-47 * time.Hour)}},
	}
	for i := range 200 {
		at := t0.Add(time.Duration(i) * 3 * time.Second)
		tok := fmt.Sprintf("tk-genuine-%d", i)
		user := fmt.Sprintf("c:%d", i)
		base = append(base,
			event.Event{ID: "m" + tok, Time: at, Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
				User: event.User{ID: user}, Token: event.Token{ID: tok, KeyID: kid, IssuedAt: at, ExpiresAt: at.Add(time.Hour)}, Source: src},
			event.Event{ID: "u" + tok, Time: at.Add(time.Second), Dataset: event.DatasetGateway, Action: "member.profile.read", Outcome: event.OutcomeSuccess,
				User: event.User{ID: user}, Token: event.Token{ID: tok, KeyID: kid, IssuedAt: at, ExpiresAt: at.Add(time.Hour)}, Source: src},
		)
	}
	forged := func(i int, refused bool) event.Event {
		at := t0.Add(time.Duration(i)*7*time.Second + time.Minute)
		ev := event.Event{ID: fmt.Sprintf("f%d", i), Time: at, Dataset: event.DatasetGateway, Action: "member.profile.read", Outcome: event.OutcomeSuccess,
			User: event.User{ID: "c:7"}, Token: event.Token{ID: fmt.Sprintf("tk-forged-%d", i), KeyID: kid, IssuedAt: at.Add(-2 * time.Hour)}, Source: src}
		if refused {
			ev.Action, ev.Outcome = "verify.never_minted", event.OutcomeFailure
		}
		return ev
	}
	for _, tc := range []struct {
		name        string
		served      bool   // one of the forged tokens was served
		again       bool   // … after it was refused and reported
		refusedOnly string // the playbook's block_source refused_only
		block       string
		findings    int
	}{
		{"hard-benign: NAT, every forged token refused", false, false, "", StatePendingApproval, 5},
		{"attack: one forged token served through grace", true, false, "", StatePlanned, 5},
		{"attack: a refused forged token served later, failing open", true, true, "", StatePlanned, 6},
		{"refused only, playbook opts out", false, false, RefusedContain, StatePlanned, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := append([]event.Event(nil), base...)
			for i := range 5 {
				evs = append(evs, forged(i, !(tc.served && !tc.again && i == 3)))
			}
			if tc.again {
				// haechi unreachable ten minutes later: the gateway
				// fails open and serves forged token 3.
				ev := forged(3, false)
				ev.ID, ev.Time = "f3-again", t0.Add(30*time.Minute)
				evs = append(evs, ev)
			}
			// The issuer's stream goes on past every mint deadline.
			evs = append(evs, event.Event{ID: "late", Time: t0.Add(time.Hour), Dataset: event.DatasetToken, Action: event.ActionTokenIssued,
				Outcome: event.OutcomeSuccess, Token: event.Token{ID: "tk-later", KeyID: kid, IssuedAt: t0.Add(time.Hour), ExpiresAt: t0.Add(2 * time.Hour)}})
			slices.SortStableFunc(evs, func(a, b event.Event) int { return a.Time.Compare(b.Time) })
			fs := runToken(t, evs)
			a := event.Alert{ID: "a-" + tc.name, Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: kid}, Severity: event.SeverityCritical,
				Score: 95, Detector: token.Name, State: event.AlertOpen}
			for _, f := range fs {
				if f.Entity != a.Entity {
					continue
				}
				if a.Time.IsZero() || f.Time.Before(a.Time) {
					a.Time = f.Time
				}
				a.Findings = append(a.Findings, f)
			}
			if len(a.Findings) != tc.findings {
				t.Fatalf("%d findings about key %s, want %d (one per forged token, and one for a served one reported refused before): %+v",
					len(a.Findings), kid, tc.findings, fs)
			}
			cfg := testConfig("http://127.0.0.1:1")
			for i := range cfg.Playbooks[0].Actions {
				if cfg.Playbooks[0].Actions[i].Kind == KindBlockSource {
					cfg.Playbooks[0].Actions[i].RefusedOnly = tc.refusedOnly
				}
			}
			p, err := NewPlanner(cfg)
			if err != nil {
				t.Fatal(err)
			}
			blocks := 0
			for _, act := range p.Plan(a) {
				switch act.Kind {
				case KindBlockSource:
					blocks++
					if act.Target != nat.String() || act.State != tc.block {
						t.Errorf("block_source %s: %s (%s), want %s", act.Target, act.State, act.Reason, tc.block)
					}
				case KindRevokeKey:
					want := StatePendingApproval
					if tc.served {
						want = StatePlanned
					}
					if act.State != want {
						t.Errorf("revoke_key: %s (%s), want %s", act.State, act.Reason, want)
					}
				}
			}
			if blocks != 1 {
				t.Errorf("%d block_source actions, want 1 (the NAT)", blocks)
			}
		})
	}
}

// runToken runs evs through an engine of two shards with token_provenance,
// one event per batch as a live source would, and returns its findings.
func runToken(t *testing.T, evs []event.Event) []event.Finding {
	t.Helper()
	eng, err := engine.New(engine.Options{Detectors: []engine.Detector{token.New(token.Options{})}, Shards: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Finding
	done := make(chan struct{})
	go func() {
		defer close(done)
		for out := range eng.Output() {
			got = append(got, out.Findings...)
		}
	}()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(context.Background()) }()
	for i := range evs {
		if err := eng.Submit(context.Background(), engine.Batch{Events: evs[i : i+1 : i+1]}); err != nil {
			t.Fatal(err)
		}
	}
	eng.Close()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	<-done
	return got
}

// TestRefusedOnlyThenServed: the alert about a key grows as the forger
// goes on. Its first findings rest on refused presentations only, so the
// key's revocation and the source's block wait for approval; then a
// forged token from the same source is served (grace, or a gateway that
// failed open) and its finding joins the same alert. The forger is past
// the check: the re-planned alert revokes the key and blocks the source
// at once, as actions of their own (the held ones stay to decide).
// Before, the held actions' ids were already seen, so the re-planned
// alert planned nothing: a forger could open the alert with a refused
// junk token first and keep containment waiting on a person.
func TestRefusedOnlyThenServed(t *testing.T) {
	t0 := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	src := event.Source{IP: netip.MustParseAddr("100.64.12.34"), Country: "KR", ASN: 17858}
	const kid = "auth-2026"
	evs := []event.Event{
		{ID: "inv", Time: t0.Add(-72 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: kid, Status: "active"}},
		{ID: "warm", Time: t0.Add(-48 * time.Hour), Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
			Token: event.Token{ID: "tk-warm", KeyID: kid, IssuedAt: t0.Add(-48 * time.Hour), ExpiresAt: t0.Add(-47 * time.Hour)}},
	}
	for i := range 3 {
		at := t0.Add(time.Duration(i) * 7 * time.Second)
		evs = append(evs, event.Event{ID: fmt.Sprintf("f%d", i), Time: at, Dataset: event.DatasetGateway, Action: "verify.never_minted",
			Outcome: event.OutcomeFailure, User: event.User{ID: "c:7"}, Source: src,
			Token: event.Token{ID: fmt.Sprintf("tk-forged-%d", i), KeyID: kid, IssuedAt: at.Add(-2 * time.Hour)}})
	}
	served := event.Event{ID: "f-served", Time: t0.Add(20 * time.Minute), Dataset: event.DatasetGateway, Action: "member.profile.read",
		Outcome: event.OutcomeSuccess, User: event.User{ID: "c:7"}, Source: src,
		Token: event.Token{ID: "tk-forged-served", KeyID: kid, IssuedAt: t0.Add(18 * time.Minute)}}
	evs = append(evs, served, event.Event{ID: "late", Time: t0.Add(time.Hour), Dataset: event.DatasetToken, Action: event.ActionTokenIssued,
		Outcome: event.OutcomeSuccess, Token: event.Token{ID: "tk-later", KeyID: kid, IssuedAt: t0.Add(time.Hour), ExpiresAt: t0.Add(2 * time.Hour)}})
	fs := runToken(t, evs)
	var refused, all []event.Finding
	for _, f := range fs {
		if f.Entity != (event.EntityKey{Kind: event.EntitySigningKey, ID: kid}) {
			continue
		}
		all = append(all, f)
		if slices.Contains(f.Tags, token.TagRefusedOnly) {
			refused = append(refused, f)
		}
	}
	if len(refused) != 3 || len(all) != 4 {
		t.Fatalf("%d findings about key %s (%d refused only), want 4 (3): %+v", len(all), kid, len(refused), fs)
	}
	p, err := NewPlanner(testConfig("http://127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	a := event.Alert{ID: "a-key", Time: refused[0].Time, Entity: refused[0].Entity, Severity: event.SeverityCritical,
		Score: 95, Detector: token.Name, State: event.AlertOpen, Findings: refused}
	states := func(acts []Action) map[string]string {
		m := map[string]string{}
		for _, act := range acts {
			if act.Kind == KindRevokeKey || act.Kind == KindBlockSource {
				m[act.Kind+" "+act.Target] = act.State
			}
		}
		return m
	}
	first := states(p.Plan(a))
	want := map[string]string{KindRevokeKey + " " + kid: StatePendingApproval, KindBlockSource + " " + src.IP.String(): StatePendingApproval}
	if !maps.Equal(first, want) {
		t.Fatalf("refused only: %v, want %v", first, want)
	}
	a.Findings = all
	again := states(p.Plan(a))
	want = map[string]string{KindRevokeKey + " " + kid: StatePlanned, KindBlockSource + " " + src.IP.String(): StatePlanned}
	if !maps.Equal(again, want) {
		t.Errorf("after a served forgery joined the alert: %v, want %v", again, want)
	}
	if third := p.Plan(a); len(states(third)) != 0 {
		t.Errorf("planned again: %v", states(third))
	}
}
