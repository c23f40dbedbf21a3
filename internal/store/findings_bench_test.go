package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// benchFindings returns n scored findings shaped like a simulated week's
// risk index (internal/sim, 20,000 customers: 27,667 findings over
// 144,937 events): a dozen detectors, principals and source addresses as
// entities, event times that rise (≈ 22 s apart, several findings sharing
// an event's time), two lines of evidence, a few figures, a tag and a
// related entity, one finding in ten joining an alert.
func benchFindings(n int) []ScoredFinding {
	dets := []struct{ det, kind string }{
		{"behaviour", "unusual_access"}, {"off_hours", "off_hours_access"}, {"record_volume", "record_volume"},
		{"source_fanout", "source_fanout"}, {"principal_geo", "new_country"}, {"scripted_client", "scripted_user_agent"},
		{"token_binding", "token_replay"}, {"peer_route", "unusual_route"}, {"login_campaign", "password_spray"},
		{"credential_network", "credential_sharing"}, {"privileged_identity", "privilege_use"}, {"canary", "canary_read"},
	}
	t0 := time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)
	out := make([]ScoredFinding, n)
	for i := range out {
		d := dets[(i*7)%len(dets)]
		var ent event.EntityKey
		if i%3 == 0 {
			ent = event.EntityKey{Kind: event.EntitySource, ID: fmt.Sprintf("198.51.%d.%d", (i*31)%200, (i*17)%250)}
		} else {
			ent = event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprintf("cust-%06d", (i*7919)%20000)}
		}
		at := t0.Add(time.Duration(i/2) * 44 * time.Second)
		score := float64(20 + (i*13)%70)
		f := event.Finding{Detector: d.det, Kind: d.kind, Title: "Unusual " + d.kind, Entity: ent, Time: at,
			Score: score, Severity: event.SeverityForScore(score),
			Explanation:  fmt.Sprintf("%s read %d records of %s in an hour; its role's peers read %d at most", ent.ID, 40+i%300, d.kind, 12+i%20),
			Evidence:     []string{fmt.Sprintf("req-%010d", i), fmt.Sprintf("req-%010d", i+1)},
			Tags:         []string{"attack.t1530"},
			Related:      []event.EntityKey{{Kind: event.EntityToken, ID: fmt.Sprintf("tok-%d", i%4000)}},
			Figures:      []event.Figure{{Name: "records", Value: float64(40 + i%300)}, {Name: "peers_max", Value: float64(12 + i%20)}, {Name: "z", Value: 3.5}},
			Contribution: score / 2, Line: "volume"}
		sf := ScoredFinding{Finding: f, Risk: score, Threshold: 90}
		if i%10 == 0 {
			sf.Alert = fmt.Sprintf("al-%06d", i/10)
		}
		out[i] = sf
	}
	return out
}

// BenchmarkSaveFindings stores b.N scored findings into the risk index of
// a SQLite store, in commits of 512 (replay's alert writer commits about
// that many a flush), the index growing as it would over a stream (new),
// or stores them a second time, unchanged, as a replay of the same input
// into the same store does (again). cpu-ns/finding is the process's CPU
// time per finding (getrusage): the machine is shared, so wall time is
// the weaker figure.
func BenchmarkSaveFindings(b *testing.B) {
	for _, again := range []bool{false, true} {
		name := "new"
		if again {
			name = "again"
		}
		b.Run(name, func(b *testing.B) {
			s := sqliteBackend.open(b)
			fs := benchFindings(b.N)
			if again {
				saveFindingBatches(b, s, fs)
			}
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime()
			saveFindingBatches(b, s, fs)
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/finding")
		})
	}
}

func saveFindingBatches(b *testing.B, s *Store, fs []ScoredFinding) {
	const batch = 512
	for start := 0; start < len(fs); start += batch {
		if err := s.SaveFindings(b.Context(), fs[start:min(start+batch, len(fs))]); err != nil {
			b.Fatal(err)
		}
	}
}
