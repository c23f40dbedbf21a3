package binding_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/binding"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func newDetector() *binding.Detector {
	return binding.New(binding.Options{HostingMarkers: config.DefaultHostingMarkers})
}

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector { return []engine.Detector{newDetector()} })
}

func TestKey(t *testing.T) {
	d := newDetector()
	for _, tc := range []struct {
		name string
		ev   event.Event
		ok   bool
	}{
		{"use", event.Event{Dataset: event.DatasetGateway, Token: event.Token{ID: "t"}}, true},
		{"mint", event.Event{Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Token: event.Token{ID: "t"}}, true},
		{"rejected use", event.Event{Dataset: event.DatasetGateway, Outcome: event.OutcomeFailure, Token: event.Token{ID: "t"}}, false},
		{"other token action", event.Event{Dataset: event.DatasetToken, Action: "token.revoked", Token: event.Token{ID: "t"}}, false},
		{"no token", event.Event{Dataset: event.DatasetGateway}, false},
		{"cloudtrail credential", event.Event{Dataset: "aws.cloudtrail", Token: event.Token{ID: "ASIA1"}}, false},
	} {
		k, ok := d.Key(&tc.ev)
		if ok != tc.ok || (ok && k != (event.EntityKey{Kind: event.EntityToken, ID: "t"})) {
			t.Errorf("%s: Key = %v, %v; want ok=%v", tc.name, k, ok, tc.ok)
		}
	}
	ev := &event.Event{Dataset: event.DatasetGateway, Token: event.Token{ID: "t"}}
	if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
		t.Errorf("Key allocates %.0f times", n)
	}
}

// TestFindingsImmediate: every signal alerts on its own and names the
// new source for block_source.
func TestFindingsImmediate(t *testing.T) {
	for _, c := range []string{"country", "hosting", "concurrent", "foreign_hosting_replay", "rotating_proxy", "mint_without_network", "script_replay_domestic_proxy", "headless_replay_same_carrier"} {
		evs := readCase(t, c)
		fs := detecttest.Findings(t, evs, 2, newDetector())
		if len(fs) == 0 {
			t.Fatalf("%s: no findings", c)
		}
		for _, f := range fs {
			if !f.Immediate || f.Entity.Kind != event.EntityToken || len(f.Related) != 1 || f.Related[0].Kind != event.EntitySource {
				t.Errorf("%s: finding %s: immediate=%v entity=%v related=%v", c, f.Kind, f.Immediate, f.Entity, f.Related)
			}
		}
	}
}

// TestSwitchThreshold: the concurrent case needs SwitchCount switches;
// one more than it has is not reached.
func TestSwitchThreshold(t *testing.T) {
	count := func(n int) int {
		d := binding.New(binding.Options{SwitchCount: n})
		got := 0
		for _, f := range detecttest.Findings(t, readCase(t, "concurrent"), 1, d) {
			if f.Kind == binding.KindConcurrent {
				got++
			}
		}
		return got
	}
	if count(binding.DefaultSwitchCount) != 1 {
		t.Errorf("default switch count: no concurrent finding")
	}
	if count(50) != 0 {
		t.Errorf("switch count 50: concurrent finding from a handful of switches")
	}
}

// TestMemoryPerToken measures the heap held per live token on one shard.
func TestMemoryPerToken(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates ~20 MB")
	}
	const n = 100_000
	d := newDetector()
	sh := d.NewShard()
	c := engine.NewTestContext(0, 1)
	base := time.Date(2025, 6, 24, 9, 0, 0, 0, time.UTC)
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = event.Event{Time: base.Add(time.Duration(i) * time.Millisecond), Dataset: event.DatasetToken, Action: event.ActionTokenIssued,
			Token:  event.Token{ID: "tk-" + strconv.Itoa(i)},
			Source: event.Source{Country: "KR", ASN: 4766, ASOrg: "Korea Telecom"}}
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range evs {
		k, _ := d.Key(&evs[i])
		sh.Process(c, k, &evs[i])
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("%.0f bytes per live token", per)
	if per > 128 {
		t.Errorf("%.0f bytes per live token, want at most 128", per)
	}
	runtime.KeepAlive(sh)
	runtime.KeepAlive(evs)
}
