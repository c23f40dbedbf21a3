package engine_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// tally keys on user.id and tracks each user it saw: a Footprinter of
// 100 bytes per user.
type tally struct{}

func (tally) Name() string { return "tally" }
func (tally) Key(ev *event.Event) (event.EntityKey, bool) {
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, ev.User.ID != ""
}
func (tally) NewShard() engine.Shard { return &tallyShard{users: map[string]bool{}} }

type tallyShard struct{ users map[string]bool }

func (s *tallyShard) Process(_ *engine.Context, key event.EntityKey, _ *event.Event) {
	s.users[key.ID] = true
}

// Advance forgets everything at the end: the footprint reported is the
// one before it.
func (s *tallyShard) Advance(_ *engine.Context, wm time.Time) {
	if wm.Equal(engine.EndOfTime) {
		clear(s.users)
	}
}

func (s *tallyShard) Footprint() (int, int64) { return len(s.users), 100 * int64(len(s.users)) }

// TestFootprints: the engine sums its detectors' footprints over the
// shards, as they were before the input's end closed every window, and
// exports them as gauges; a detector that is no Footprinter is not
// reported.
func TestFootprints(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	e, err := engine.New(engine.Options{Detectors: []engine.Detector{newRecorder(), tally{}}, Shards: 3, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.Footprints(); len(got) != 0 {
		t.Errorf("before Run: %+v, want none", got)
	}
	var b1, b2 []event.Event
	for i := range 60 {
		x := ev("", "u"+string(rune('a'+i%26))+string(rune('a'+i/26)), time.Duration(i)*time.Second)
		if i < 50 {
			b1 = append(b1, x)
		} else {
			b2 = append(b2, x)
		}
	}
	// The second batch comes within the sampling interval of the first:
	// only the sample taken before the end is announced counts it.
	collect(t, e, b1, b2, b1[:10])
	want := []engine.Footprint{{Detector: "tally", Entities: 60, Bytes: 6000}}
	got := e.Footprints()
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("Footprints = %+v, want %+v", got, want)
	}
	if got[0].PerEntity() != 100 {
		t.Errorf("PerEntity = %v, want 100", got[0].PerEntity())
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauges := map[string]string{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "haechi_detector_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				gauges[mf.GetName()+"{"+l.GetName()+"="+l.GetValue()+"}"] = fmt.Sprint(m.GetGauge().GetValue())
			}
		}
	}
	wantGauges := map[string]string{"haechi_detector_entities{detector=tally}": "60", "haechi_detector_bytes{detector=tally}": "6000"}
	if fmt.Sprint(gauges) != fmt.Sprint(wantGauges) {
		t.Errorf("gauges %v, want %v", gauges, wantGauges)
	}
}
