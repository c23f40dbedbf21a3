package eval

import (
	"net/netip"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

// TestInlineChecker feeds the checker a stream in arrival order: a mint
// its shipper held back reaches the stream after the token's first use
// (hard-benign). Without a grace that use is falsely refused; with one it
// is graced. A forged token and a token of a key not in the inventory are
// refused either way, and counted as the attack's.
func TestInlineChecker(t *testing.T) {
	t0 := time.Date(2026, 6, 3, 12, 0, 0, 0, time.UTC)
	src := netip.MustParseAddr("203.0.113.7")
	tr := &truth.Truth{
		Scenarios:  []truth.Scenario{{Name: "forgery", MaliciousEventIDs: []string{"m-forged", "m-ghost"}}},
		HardBenign: []truth.Benign{{Name: "auth-log-shipper-stall", EventIDs: []string{"b-late", "b-late-mint"}}},
	}
	// The stream's order is the slice's: arrival order.
	mintEv := func(id, tok string, at time.Time) event.Event {
		return event.Event{ID: id, Time: at, Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Outcome: event.OutcomeSuccess,
			Token: event.Token{ID: tok, KeyID: "k1", IssuedAt: at, ExpiresAt: at.Add(time.Hour)}}
	}
	use := func(id, tok, kid string, at, iat time.Time) event.Event {
		return event.Event{ID: id, Time: at, Dataset: event.DatasetGateway, Outcome: event.OutcomeSuccess,
			Token: event.Token{ID: tok, KeyID: kid, IssuedAt: iat}, Source: event.Source{IP: src, Country: "KR"}}
	}
	stream := []event.Event{
		{ID: "inv", Time: t0.Add(-72 * time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1", Status: "active"}},
		mintEv("warm", "tok-warm", t0.Add(-48*time.Hour)), // coverage began two days ago
		mintEv("mint-a", "tok-a", t0.Add(-10*time.Minute)),
		use("u-a", "tok-a", "k1", t0, t0.Add(-10*time.Minute)),
		use("m-forged", "tok-forged", "k1", t0, t0.Add(-time.Hour)),
		use("m-ghost", "tok-ghost", "k-ghost", t0, t0.Add(-time.Hour)),
		use("b-late", "tok-late", "k1", t0.Add(time.Minute), t0.Add(30*time.Second)),
		mintEv("b-late-mint", "tok-late", t0.Add(30*time.Second)), // shipped late, at t0+3m
		use("u-late-2", "tok-late", "k1", t0.Add(4*time.Minute), t0.Add(30*time.Second)),
	}
	tests := []struct {
		name                                string
		grace                               time.Duration
		refused, attack, benign, hb, graced int
	}{
		{"no grace: the held-back mint's first use is falsely refused", 0, 3, 2, 1, 1, 0},
		{"grace 5m: it is graced", 5 * time.Minute, 2, 2, 0, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Default()
			cfg.Verify.GraceSkew = config.Duration(tt.grace)
			c := newInlineChecker(cfg, tr)
			refusedIDs := map[string]bool{}
			for i := range stream {
				ev := stream[i]
				if _, ok := c.Check(&ev); ok {
					refusedIDs[ev.ID] = true
				}
			}
			s := c.result()
			if s.Checked != 5 || s.Refused != tt.refused || s.RefusedAttack != tt.attack || s.RefusedBenign != tt.benign ||
				s.RefusedHardBenign != tt.hb || s.Graced != tt.graced {
				t.Fatalf("score %+v, refused %v", s, refusedIDs)
			}
			if !refusedIDs["m-forged"] || !refusedIDs["m-ghost"] || refusedIDs["u-a"] || refusedIDs["u-late-2"] {
				t.Errorf("refused %v", refusedIDs)
			}
			if s.ByVerdict["never_minted"] != tt.refused-1 || s.ByVerdict["unknown_key"] != 1 {
				t.Errorf("by verdict %v", s.ByVerdict)
			}
			if tt.hb > 0 && (len(s.HardBenign) != 1 || s.HardBenign[0] != "auth-log-shipper-stall") {
				t.Errorf("hard-benign %v", s.HardBenign)
			}
		})
	}
}
