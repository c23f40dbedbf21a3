package alert_test

import (
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

// forged is an immediate finding about key k1, as the token detector
// reports a never-minted token; ev names its use.
func forged(at time.Duration, ev string) event.Finding {
	return event.Finding{Detector: "token_provenance", Kind: "token_never_minted", Title: "Token used but never minted",
		Entity: event.EntityKey{Kind: event.EntitySigningKey, ID: "k1"}, Time: t0.Add(at), Score: 95,
		Severity: event.SeverityCritical, Explanation: "never minted " + ev, Evidence: []string{ev}, Immediate: true}
}

// withdrawal withdraws f, citing the late mint.
func withdrawal(f event.Finding, mint string) event.Finding {
	return event.Finding{Detector: f.Detector, Kind: "token_never_minted_withdrawn", Title: "Never-minted verdict withdrawn",
		Entity: f.Entity, Time: f.Time, Severity: event.SeverityLow, Explanation: "its mint " + mint + " arrived 5m late.",
		Evidence: []string{mint}, Withdraws: f.ID()}
}

func TestWithdraw(t *testing.T) {
	a1, a2 := forged(0, "use-1"), forged(time.Minute, "use-2")
	weak := f("x", "scripted_client", 0, 45)
	weak.Entity = a1.Entity
	other := forged(0, "use-9") // never raised: a withdrawal of it names nothing held
	for _, tc := range []struct {
		name string
		// steps: each a Process call, or an Advance when nil.
		steps     [][]event.Finding
		want      []string
		wantState event.AlertState
		wantN     int    // FindingCount of the alert at the end
		wantExpl  string // substring of its explanation
	}{
		{
			name:      "only finding withdrawn while open",
			steps:     [][]event.Finding{{a1}, {withdrawal(a1, "mint-1")}},
			want:      []string{"raised k1/token_provenance n=1", "withdrawn k1/token_provenance n=0"},
			wantState: event.AlertWithdrawn, wantN: 0, wantExpl: "Withdrawn: its mint mint-1 arrived 5m late.",
		},
		{
			name:      "another forged token stands",
			steps:     [][]event.Finding{{a1, a2}, {withdrawal(a1, "mint-1")}},
			want:      []string{"raised k1/token_provenance n=1", "updated k1/token_provenance n=2", "updated k1/token_provenance n=1", "closed k1/token_provenance n=1"},
			wantState: event.AlertOpen, wantN: 1, wantExpl: "Withdrawn from this alert: its mint mint-1",
		},
		{
			name:      "withdrawn after the alert closed",
			steps:     [][]event.Finding{{a1}, nil, {withdrawal(a1, "mint-1")}},
			want:      []string{"raised k1/token_provenance n=1", "closed k1/token_provenance n=1", "withdrawn k1/token_provenance n=0"},
			wantState: event.AlertWithdrawn, wantN: 0, wantExpl: "Withdrawn:",
		},
		{
			name:      "what remains is below the threshold",
			steps:     [][]event.Finding{{weak, a1}, {withdrawal(a1, "mint-1")}},
			want:      []string{"raised k1/token_provenance n=2", "withdrawn k1/token_provenance n=1"},
			wantState: event.AlertWithdrawn, wantN: 1, wantExpl: "risk 45, below the alert threshold of 90",
		},
		{
			// Hard-benign twin: the late mint is another token's; the
			// forged token's alert stands untouched.
			name:      "withdrawal of a finding not held",
			steps:     [][]event.Finding{{a1}, {withdrawal(other, "mint-9")}},
			want:      []string{"raised k1/token_provenance n=1", "closed k1/token_provenance n=1"},
			wantState: event.AlertOpen, wantN: 1, wantExpl: "never minted use-1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &rec{}
			s := newStage(t, r, 0)
			for _, st := range tc.steps {
				if st == nil {
					s.Advance(t0.Add(3 * time.Hour))
					continue
				}
				s.Process(st)
			}
			s.Flush()
			if got := strings.Join(r.changes, "\n"); got != strings.Join(tc.want, "\n") {
				t.Fatalf("changes:\n%s\nwant:\n%s", got, strings.Join(tc.want, "\n"))
			}
			a := r.last[alert.ID(a1.Entity, a1.Detector, a1.Time)]
			if a.ID == "" {
				a = r.last[alert.ID(a1.Entity, "scripted_client", a1.Time)]
			}
			if a.State != tc.wantState || a.FindingCount != tc.wantN || !strings.Contains(a.Explanation, tc.wantExpl) {
				t.Errorf("alert: state %q, %d findings, explanation %q; want %q, %d, containing %q",
					a.State, a.FindingCount, a.Explanation, tc.wantState, tc.wantN, tc.wantExpl)
			}
			for _, x := range a.Findings {
				if x.Withdraws == 0 && x.Evidence[0] == "use-1" && tc.name != "withdrawal of a finding not held" {
					t.Errorf("withdrawn finding still listed: %+v", x)
				}
			}
		})
	}
}

// TestWithdrawOrdered: held findings are released in event-time order and a
// withdrawal carries its finding's time, so a finding and its withdrawal
// arriving together in any order end in the same withdrawn alert as in an
// unordered stage.
func TestWithdrawOrdered(t *testing.T) {
	a1 := forged(0, "use-1")
	w := withdrawal(a1, "mint-1")
	for _, in := range [][]event.Finding{{a1, w}, {w, a1}} {
		r := &rec{}
		s, err := alert.New(alert.Options{Ordered: true, Sinks: []alert.Sink{r}})
		if err != nil {
			t.Fatal(err)
		}
		s.Process(in)
		s.Advance(t0.Add(time.Hour))
		s.Flush()
		want := "raised k1/token_provenance n=1\nwithdrawn k1/token_provenance n=0"
		if got := strings.Join(r.changes, "\n"); got != want {
			t.Errorf("input %s first: changes\n%s\nwant\n%s", in[0].Kind, got, want)
		}
	}
}

// TestWithdrawAfterRestore: which findings are immediate survives a
// snapshot, so a withdrawal after a restart still sees that another forged
// token keeps the alert standing.
func TestWithdrawAfterRestore(t *testing.T) {
	a1, a2 := forged(0, "use-1"), forged(time.Minute, "use-2")
	r := &rec{}
	s := newStage(t, r, 0)
	s.Process([]event.Finding{a1, a2})
	b, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r2 := &rec{}
	s2 := newStage(t, r2, 0)
	if err := s2.Restore(b); err != nil {
		t.Fatal(err)
	}
	s2.Process([]event.Finding{withdrawal(a1, "mint-1")})
	s2.Flush()
	want := "updated k1/token_provenance n=1\nclosed k1/token_provenance n=1"
	if got := strings.Join(r2.changes, "\n"); got != want {
		t.Errorf("changes\n%s\nwant\n%s", got, want)
	}
}
