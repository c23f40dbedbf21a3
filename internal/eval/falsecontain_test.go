package eval

import (
	"net/netip"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

// TestFalseContainments: a containment that refused only benign requests
// is false — hard-benign when they belong to a hard-benign entry (or its
// target is one), ordinary otherwise; one that also stopped an attack is
// not, and its benign refusals are collateral.
func TestFalseContainments(t *testing.T) {
	t0 := time.Date(2025, 6, 5, 18, 0, 0, 0, time.UTC)
	tr := &truth.Truth{
		Scenarios: []truth.Scenario{{Name: "credential-stuffing", MaliciousEventIDs: []string{"bad-1"},
			AttackerEntities: []event.EntityKey{{Kind: event.EntitySource, ID: "45.77.1.1"}}}},
		HardBenign: []truth.Benign{{Name: "cgnat", Entities: []event.EntityKey{{Kind: event.EntitySource, ID: "100.64.0.1"}},
			EventIDs: []string{"hb-1"}}},
	}
	botnet := Containment{Time: t0, Kind: "block_source", Target: event.EntityKey{Kind: event.EntitySource, ID: "AS20473"}}
	carrier := Containment{Time: t0, Kind: "block_source", Target: event.EntityKey{Kind: event.EntitySource, ID: "AS17858"}}
	cgnat := Containment{Time: t0, Kind: "block_source", Target: event.EntityKey{Kind: event.EntitySource, ID: "100.64.0.1"}}
	quiet := Containment{Time: t0, Kind: "disable_identity", Target: event.EntityKey{Kind: event.EntityPrincipal, ID: "m:1"}}
	f := newFalseContainer(tr, []Containment{botnet, carrier, cgnat, quiet})
	ev := func(id, ip string) *event.Event {
		return &event.Event{ID: id, Time: t0.Add(time.Minute), Dataset: event.DatasetGateway,
			Source: event.Source{IP: netip.MustParseAddr(ip)}}
	}
	f.Refused(ev("bad-1", "45.77.1.1"), botnet)
	f.Refused(ev("ok-1", "45.77.1.2"), botnet)    // collateral
	f.Refused(ev("ok-2", "106.101.1.1"), carrier) // ordinary
	f.Refused(ev("ok-3", "106.101.1.2"), carrier) // ordinary
	f.Refused(ev("ok-3", "106.101.1.2"), carrier) // counted once
	f.Refused(ev("hb-1", "100.64.0.1"), cgnat)    // hard-benign
	got := f.score()
	if got.Containments != 2 || got.Ordinary != 1 || got.HardBenign != 1 || got.RefusedEvents != 3 || got.Collateral != 1 {
		t.Fatalf("got %+v", got)
	}
	if b := got.ByTarget[0]; b.Target.ID != "AS17858" || b.Refused != 2 || len(b.HardBenign) != 0 {
		t.Errorf("first: %+v", b)
	}
	if b := got.ByTarget[1]; b.Target.ID != "100.64.0.1" || len(b.HardBenign) != 1 || b.HardBenign[0] != "cgnat" {
		t.Errorf("second: %+v", b)
	}
}

// TestFalseContainmentInstrument: revoking a token that carried an
// attack's request (an insider's own session that exported, revoked after
// the export) is not false though it refused only the session's later
// routine requests; revoking a token that carried none is, whoever holds
// it.
func TestFalseContainmentInstrument(t *testing.T) {
	t0 := time.Date(2025, 6, 5, 18, 0, 0, 0, time.UTC)
	tr := &truth.Truth{Scenarios: []truth.Scenario{{Name: "slow-insider-export", MaliciousEventIDs: []string{"export-1"},
		AttackerEntities: []event.EntityKey{{Kind: event.EntityPrincipal, ID: "e:1016"}}}}}
	used := Containment{Time: t0, Kind: "revoke_token", Target: event.EntityKey{Kind: event.EntityToken, ID: "tk-used"}}
	other := Containment{Time: t0, Kind: "revoke_token", Target: event.EntityKey{Kind: event.EntityToken, ID: "tk-other"}}
	f := newFalseContainer(tr, []Containment{used, other})
	ev := func(id, tok string) *event.Event {
		return &event.Event{ID: id, Time: t0, Dataset: event.DatasetGateway, Token: event.Token{ID: tok}}
	}
	f.Observe(ev("export-1", "tk-used")) // the export, before the revocation
	f.Observe(ev("routine-1", "tk-used"))
	f.Refused(ev("routine-1", "tk-used"), used)
	f.Observe(ev("routine-2", "tk-other"))
	f.Refused(ev("routine-2", "tk-other"), other)
	got := f.score()
	if got.Containments != 1 || got.Collateral != 1 || len(got.ByTarget) != 1 || got.ByTarget[0].Target.ID != "tk-other" {
		t.Fatalf("got %+v", got)
	}
}
