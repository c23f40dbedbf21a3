package app_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
)

// A genuine token whose mint reaches haechi after the never-minted verdict
// ends, through the whole pipeline (default configuration, every detector),
// in a withdrawn alert — the alert raised for the verdict, same id, its
// explanation saying why — whether the alert stage runs unordered (replay,
// serve) or ordered (cluster mode); the hard-benign twin (forged tokens,
// one of them "minted" only after it was used) leaves an alert that
// stands. The token detector's late-mint cases are the input.
//
// The mint must arrive after the verdict: in a later delivery than the
// events that carried the issuer's stream past the token's deadline, as
// when the issuer's shipper stalls. Fed as one file, all of a case fits
// one 1,024-event batch and the late mint is processed before the batch's
// verdicts — then the token is simply minted and nothing is raised (the
// lateness case still withdraws: the engine splits a batch where the
// silent issuer's stream moves behind the watermark). Three deliveries
// are tried: one event each (a live source), two (split at the late
// event) and one (replay of a small file).
func TestLateMintWithdrawsAlert(t *testing.T) {
	type outcome struct {
		withdrawn bool
		standing  []string // evidence of the never-minted findings in the alert
	}
	for _, tc := range []struct {
		dir string
		// want by delivery: "each", "split", "whole"; a zero outcome means no alert.
		want map[string]outcome
	}{
		{"withdraw_late_mint", map[string]outcome{"each": {withdrawn: true}, "split": {withdrawn: true}, "whole": {}}},
		{"mint_too_late", map[string]outcome{"each": {withdrawn: true}, "split": {withdrawn: true}, "whole": {withdrawn: true}}},
		{"withdraw_late_mint_benign", map[string]outcome{
			"each":  {standing: []string{"use-forged", "use-forged-2"}},
			"split": {standing: []string{"use-forged", "use-forged-2"}},
			"whole": {standing: []string{"use-forged", "use-forged-2"}},
		}},
	} {
		evs := readCase(t, "../detect/token/testdata/"+tc.dir+"/events.ndjson")
		for _, delivery := range []string{"each", "split", "whole"} {
			want := tc.want[delivery]
			var seen []string
			for _, ordered := range []bool{false, true} {
				name := fmt.Sprintf("%s, %s, ordered %v", tc.dir, delivery, ordered)
				changes := runDeliveries(t, evs, delivery, ordered)
				if !want.withdrawn && want.standing == nil {
					if len(changes) != 0 {
						t.Errorf("%s: alerts %v, want none", name, changes)
					}
					continue
				}
				if len(changes) == 0 {
					t.Errorf("%s: no alert", name)
					continue
				}
				raised, last := changes[0], changes[len(changes)-1]
				if raised.c != alert.Raised {
					t.Errorf("%s: first change %v, want raised", name, raised.c)
				}
				for _, ch := range changes {
					if ch.a.ID != raised.a.ID {
						t.Errorf("%s: changes to two alerts, %s and %s", name, raised.a.ID, ch.a.ID)
					}
				}
				if want.withdrawn {
					if last.c != alert.Withdrawn || last.a.State != event.AlertWithdrawn {
						t.Errorf("%s: last change %v, state %q; want withdrawn", name, last.c, last.a.State)
					}
					if !strings.HasPrefix(last.a.Explanation, "Withdrawn: ") || !strings.Contains(last.a.Explanation, "arrived after that verdict") {
						t.Errorf("%s: explanation %q does not say why it was withdrawn", name, last.a.Explanation)
					}
				} else {
					for _, ch := range changes {
						if ch.c == alert.Withdrawn || ch.a.State == event.AlertWithdrawn {
							t.Errorf("%s: the hard-benign twin's alert was withdrawn: %s", name, ch.a.Explanation)
						}
					}
					var got []string
					for _, f := range last.a.Findings {
						if f.Kind == "token_never_minted" {
							got = append(got, f.Evidence...)
						}
					}
					slices.Sort(got)
					if !slices.Equal(got, want.standing) {
						t.Errorf("%s: never-minted findings in the alert %v, want %v", name, got, want.standing)
					}
				}
				seen = append(seen, last.a.ID+" "+string(last.a.State)+" "+last.a.Explanation)
			}
			if len(seen) == 2 && seen[0] != seen[1] {
				t.Errorf("%s, %s: unordered and ordered differ:\n%s\n%s", tc.dir, delivery, seen[0], seen[1])
			}
		}
	}
}

type alertChange struct {
	c alert.Change
	a event.Alert
}

func readCase(t *testing.T, path string) []event.Event {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rd := decode.NewReader(f, 1, 0)
	var evs []event.Event
	for {
		var ev event.Event
		if err := rd.Next(&ev); err != nil {
			return evs
		}
		evs = append(evs, ev)
	}
}

// runDeliveries runs evs through a pipeline with the default
// configuration, delivered as delivery says, one origin, and returns every
// alert change.
func runDeliveries(t *testing.T, evs []event.Event, delivery string, ordered bool) []alertChange {
	t.Helper()
	cfg := config.Default()
	cfg.Alerts.Ordered = ordered
	var changes []alertChange
	sink := alert.SinkFunc(func(c alert.Change, a event.Alert) { changes = append(changes, alertChange{c, a}) })
	p, err := app.NewPipeline(app.PipelineOptions{Config: cfg, Sinks: []alert.Sink{sink},
		InputName: func(uint32) string { return "events" }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	var cuts []int
	switch delivery {
	case "each":
		for i := range evs {
			cuts = append(cuts, i)
		}
	case "split":
		// Before the first event older than one already delivered: the
		// late mint.
		cuts = []int{0}
		for i := 1; i < len(evs); i++ {
			if evs[i].Time.Before(evs[i-1].Time) {
				cuts = append(cuts, i)
				break
			}
		}
		if len(cuts) != 2 {
			t.Fatal("no late event to split at")
		}
	default:
		cuts = []int{0}
	}
	ctx := context.Background()
	for j, from := range cuts {
		to := len(evs)
		if j+1 < len(cuts) {
			to = cuts[j+1]
		}
		if err := p.SubmitFrom(ctx, "shipper", time.Time{}, slices.Clone(evs[from:to])); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EndOrigin(ctx, "shipper"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return changes
}

// The simulator's late-mint hard benign (an auth replica's log shipper
// stalls and delivers its mints after the tokens' first reads), fed as a
// live source would — small deliveries, so a held mint usually arrives
// after its token's never-minted verdict — leaves no standing alert: every
// never-minted verdict on those tokens is withdrawn, and the alerts they
// raised with it. The forged tokens of ghost-key stay detected.
func TestShipperStallLeavesNoStandingAlert(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates four days")
	}
	var buf bytes.Buffer
	tr, err := sim.Generate(context.Background(), sim.Options{Seed: 1, Days: 4, Customers: 40_000}, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	held := map[string]bool{}
	for _, b := range tr.HardBenign {
		if b.Name == "auth-log-shipper-stall" {
			for _, id := range b.EventIDs {
				held[id] = true
			}
		}
	}
	var evs []event.Event
	rd := decode.NewReader(&buf, 1, 0)
	for {
		var ev event.Event
		if err := rd.Next(&ev); err != nil {
			break
		}
		evs = append(evs, ev)
	}
	cfg := config.Default()
	final := map[string]event.Alert{}
	p, err := app.NewPipeline(app.PipelineOptions{Config: cfg, InputName: func(uint32) string { return "events" },
		Sinks: []alert.Sink{alert.SinkFunc(func(c alert.Change, a event.Alert) {
			if c == alert.Closed || c == alert.Withdrawn {
				final[a.ID] = a
			}
		})}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	ctx := context.Background()
	for i := 0; i < len(evs); i += 16 {
		if err := p.SubmitFrom(ctx, "shipper", time.Time{}, slices.Clone(evs[i:min(i+16, len(evs))])); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.EndOrigin(ctx, "shipper"); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var ghostKeys []string
	for _, s := range tr.Scenarios {
		for _, e := range s.AttackerEntities {
			if s.Name == "ghost-key" && e.Kind == event.EntitySigningKey {
				ghostKeys = append(ghostKeys, e.ID)
			}
		}
	}
	var withdrawn, forged int
	for _, a := range final {
		cites := false
		for _, f := range a.Findings {
			for _, ref := range f.Evidence {
				cites = cites || held[ref]
			}
		}
		switch {
		case a.State == event.AlertWithdrawn:
			withdrawn++
		case cites:
			t.Errorf("alert %s (%s) on the stalled shipper's tokens stands: %s", a.ID, a.Detector, a.Explanation)
		case a.Detector == "token_provenance" && slices.Contains(ghostKeys, a.Entity.ID):
			forged++
		}
	}
	t.Logf("%d held events, %d alerts withdrawn, %d ghost-key token alerts", len(held), withdrawn, forged)
	if withdrawn == 0 {
		t.Error("no alert withdrawn: the late mints never met a verdict, the test proves nothing")
	}
	if forged == 0 {
		t.Error("ghost-key's forged tokens raised no token_provenance alert on the old key")
	}
}
