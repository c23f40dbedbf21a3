package alert

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// oldClosed is the stage's memory of closed alerts as it was before
// closedEntry let go of replaced alerts: the reference the differential
// test holds remember to.
type oldClosed struct {
	closed map[event.EntityKey]*open
	q      []closedEntry
}

func (m *oldClosed) remember(k event.EntityKey, o *open) {
	m.closed[k] = o
	m.q = append(m.q, closedEntry{k, o})
	for len(m.q) > recentClosed {
		old := m.q[0]
		m.q = m.q[1:]
		if m.closed[old.k] == old.o {
			delete(m.closed, old.k)
		}
	}
}

// TestRememberMatchesUnboundedQueue: whatever the sequence of closes,
// re-closes of a reopened alert and reopens, the stage remembers exactly
// the closed alerts the previous queue remembered (so a late finding joins
// the same alert), while its queue holds no alert a later one of its
// entity replaced (except an earlier entry of an alert closed twice).
func TestRememberMatchesUnboundedQueue(t *testing.T) {
	for _, tc := range []struct {
		name     string
		entities int
		ops      int
		reopen   float64 // share of operations that reopen a closed alert
	}{
		{"few entities", 7, 3 * recentClosed, 0},
		{"many entities", 3 * recentClosed, 4 * recentClosed, 0},
		{"about the cap", recentClosed + 3, 5 * recentClosed, 0},
		{"reopens", 50, 3 * recentClosed, 0.2},
		{"reopens, many entities", recentClosed / 2, 4 * recentClosed, 0.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(tc.entities), uint64(tc.ops)))
			s := &Stage{closed: map[event.EntityKey]*open{}}
			m := &oldClosed{closed: map[event.EntityKey]*open{}}
			reopened := map[event.EntityKey]*open{} // taken out of closed, to close again
			for i := range tc.ops {
				k := event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprint(rng.IntN(tc.entities))}
				switch {
				case rng.Float64() < tc.reopen && s.closed[k] != nil:
					// A late finding reopens the entity's closed alert.
					reopened[k] = s.closed[k]
					delete(s.closed, k)
					delete(m.closed, k)
				case reopened[k] != nil && rng.IntN(2) == 0:
					o := reopened[k]
					delete(reopened, k)
					s.remember(k, o)
					m.remember(k, o)
				default:
					if reopened[k] != nil {
						continue // its open alert closes first
					}
					o := &open{a: event.Alert{ID: fmt.Sprint(i), Entity: k}}
					s.remember(k, o)
					m.remember(k, o)
				}
				if len(s.closed) != len(m.closed) || s.closed[k] != m.closed[k] {
					t.Fatalf("op %d: %d closed alerts remembered, the previous queue %d (entity %v: %p, %p)", i, len(s.closed), len(m.closed), k, s.closed[k], m.closed[k])
				}
				if i%101 != 0 && i != tc.ops-1 {
					continue
				}
				for k, o := range m.closed {
					if s.closed[k] != o {
						t.Fatalf("op %d: entity %v: remembered %p, the previous queue %p", i, k, s.closed[k], o)
					}
				}
				if len(s.closedQ) != len(m.q) {
					t.Fatalf("op %d: queue of %d, the previous %d", i, len(s.closedQ), len(m.q))
				}
			}
			if tc.reopen == 0 {
				held := 0
				for _, e := range s.closedQ {
					if e.o != nil {
						held++
					}
				}
				if held != len(s.closed) {
					t.Fatalf("queue holds %d alerts, %d remembered", held, len(s.closed))
				}
			}
		})
	}
}

// TestClosedAlertsHeldPerEntity: a stage that closes alert after alert
// about a few entities keeps one closed alert per entity, not one per
// alert closed (the 60-day replay: 1,341 alerts about 272 entities).
func TestClosedAlertsHeldPerEntity(t *testing.T) {
	s, err := New(Options{Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	const entities, alerts = 5, 400
	for i := range alerts {
		at := t0.Add(time.Duration(i/entities) * 3 * time.Hour)
		s.Process([]event.Finding{{Detector: "d", Kind: "k", Title: "t", Score: 95, Severity: event.SeverityCritical, Time: at, Immediate: true,
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprint(i % entities)}}})
		s.Advance(at.Add(time.Minute))
	}
	s.Flush()
	if s.Raised() != alerts {
		t.Fatalf("raised %d alerts, want %d", s.Raised(), alerts)
	}
	held := map[*open]bool{}
	for _, e := range s.closedQ {
		if e.o != nil {
			held[e.o] = true
		}
	}
	if len(held) != entities || len(s.closed) != entities {
		t.Fatalf("closed alerts held by the queue %d, remembered %d; want %d, one per entity", len(held), len(s.closed), entities)
	}
}
