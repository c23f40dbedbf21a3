package sim

import (
	"bytes"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestShipperStallRate: a few stalls a fortnight, each of one replica,
// lasting 40 s to 3 min, inside the period.
func TestShipperStallRate(t *testing.T) {
	n := 0
	const seeds = 300
	for seed := range uint64(seeds) {
		o := Options{Seed: seed, Days: 14, Customers: 1000}.withDefaults()
		g := &gen{o: o, seed: seed, startMS: o.Start.UnixMilli(), endMS: o.Start.UnixMilli() + 14*dayMS}
		g.setupShipperStalls()
		for _, s := range g.stalls {
			if d := s.to - s.from; d < stallMin || d >= stallMin+stallSpread || s.from < g.startMS || s.from >= g.endMS || s.replica >= authReplicas {
				t.Fatalf("seed %d: stall %+v", seed, s)
			}
		}
		n += len(g.stalls)
	}
	if avg := float64(n) / seeds; avg < 3 || avg > 5 {
		t.Errorf("%.2f stalls a fortnight on average, want about 4", avg)
	}
}

// TestShipperStallStream: the mints a stalled shipper held back come out
// of order, when the stall ends, labelled hard benign with the reads of
// their tokens; some reach the stream after their token's first use by
// more than a 30 s mint skew (the late mint a never-minted verdict must
// survive); nothing else is out of order.
func TestShipperStallStream(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a fortnight")
	}
	if raceEnabled {
		t.Skip("simulates a fortnight of 40,000 customers on one goroutine: nothing for the race detector (the plain run runs it)")
	}
	out, tr := run(t, Options{Seed: 1, Days: 14, Customers: 40_000})
	labelled := map[string]bool{}
	for _, b := range tr.HardBenign {
		if b.Name == "auth-log-shipper-stall" {
			for _, id := range b.EventIDs {
				labelled[id] = true
			}
		}
	}
	if len(labelled) == 0 {
		t.Fatal("no auth-log-shipper-stall events in the truth")
	}
	r := decode.NewReader(bytes.NewReader(out), 0, 0)
	var head time.Time
	firstUse := map[string]time.Time{}
	heldTokens := map[string]bool{}
	var heldMints, lateMints int
	var ev event.Event
	for r.Next(&ev) == nil {
		if ev.Dataset == event.DatasetGateway {
			if _, ok := firstUse[ev.Token.ID]; !ok {
				firstUse[ev.Token.ID] = ev.Time
			}
		}
		if ev.Time.Before(head) {
			if ev.Dataset != event.DatasetToken || !labelled[ev.ID] {
				t.Fatalf("line %d: %s %s out of order, not a held mint", r.Line(), ev.ID, ev.Dataset)
			}
			if behind := head.Sub(ev.Time); behind > time.Duration(stallMin+stallSpread+2*secMS)*time.Millisecond {
				t.Errorf("line %d: mint %s behind the stream by %v, longer than any stall", r.Line(), ev.ID, behind)
			}
			heldMints++
			heldTokens[ev.Token.ID] = true
			if fu, ok := firstUse[ev.Token.ID]; ok && head.Sub(fu) > 30*time.Second {
				lateMints++
			}
			continue
		}
		head = ev.Time
	}
	// Every labelled read is of a token whose mint was held back.
	r = decode.NewReader(bytes.NewReader(out), 0, 0)
	for r.Next(&ev) == nil {
		if labelled[ev.ID] && ev.Dataset == event.DatasetGateway && !heldTokens[ev.Token.ID] {
			t.Errorf("%s labelled, but its token %s's mint was not held back", ev.ID, ev.Token.ID)
		}
	}
	t.Logf("%d labelled events, %d held mints, %d after their token's first use by more than 30 s", len(labelled), heldMints, lateMints)
	if lateMints == 0 {
		t.Error("no mint reached the stream more than 30 s after its token's first use")
	}
}
