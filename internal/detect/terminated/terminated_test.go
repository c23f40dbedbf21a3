package terminated_test

import (
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/terminated"
	"github.com/haechi-sec/haechi/internal/engine"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{terminated.New(terminated.Options{})}
	})
}

func TestGrace(t *testing.T) {
	const events = `{"@timestamp":"2025-02-01T00:00:00Z","event":{"dataset":"hr.roster","action":"identity.terminated"},"identity":{"id":"e:1","status":"terminated","terminated_at":"2025-02-01T00:00:00Z"}}
{"@timestamp":"2025-02-01T00:30:00Z","event":{"id":"in-grace","dataset":"gateway.access","action":"read"},"user":{"id":"e:1"}}
{"@timestamp":"2025-02-01T01:00:00Z","event":{"id":"at-grace","dataset":"gateway.access","action":"read"},"user":{"id":"e:1"}}
{"@timestamp":"2025-02-01T01:00:01Z","event":{"id":"after-grace","dataset":"gateway.access","action":"read"},"user":{"id":"e:1"}}
`
	for _, tc := range []struct {
		grace time.Duration
		want  []string
	}{
		{0, []string{"in-grace", "at-grace", "after-grace"}},
		{time.Hour, []string{"after-grace"}},
		{2 * time.Hour, nil},
	} {
		got := detecttest.Findings(t, strings.NewReader(events), 2, terminated.New(terminated.Options{Grace: tc.grace}))
		var ids []string
		for _, f := range got {
			ids = append(ids, f.Evidence[0])
			if f.Severity.String() != "critical" || !f.Immediate || f.Kind != terminated.Kind {
				t.Errorf("grace %v: finding %+v is not a critical immediate %s", tc.grace, f, terminated.Kind)
			}
		}
		if strings.Join(ids, ",") != strings.Join(tc.want, ",") {
			t.Errorf("grace %v: evidence %v, want %v", tc.grace, ids, tc.want)
		}
	}
}

func TestRosterEventsAreNotActivity(t *testing.T) {
	// A roster event that carries user.id (the HR operator) is not activity
	// of that user.
	const events = `{"@timestamp":"2025-02-01T00:00:00Z","event":{"dataset":"hr.roster","action":"identity.terminated"},"identity":{"id":"e:1","status":"terminated"}}
{"@timestamp":"2025-02-02T00:00:00Z","event":{"dataset":"hr.roster","action":"identity.upsert"},"user":{"id":"e:1"},"identity":{"id":"e:2","status":"active"}}
`
	if got := detecttest.Findings(t, strings.NewReader(events), 1, terminated.New(terminated.Options{})); len(got) != 0 {
		t.Fatalf("got findings %+v, want none", got)
	}
}
