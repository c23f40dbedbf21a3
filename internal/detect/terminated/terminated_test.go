package terminated_test

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/terminated"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
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

// A departed employee's activity from outside the company's networks is
// tagged as external access (Korea PIPA's criterion); from inside, or with
// no address, it is not — the finding is the same critical finding either
// way.
func TestExternalAccessTag(t *testing.T) {
	const roster = `{"@timestamp":"2025-02-01T00:00:00Z","event":{"dataset":"hr.roster","action":"identity.terminated"},"identity":{"id":"e:1","status":"terminated","terminated_at":"2025-02-01T00:00:00Z"}}` + "\n"
	req := func(src string, asn int) string {
		s := `{"@timestamp":"2025-02-02T00:00:00Z","event":{"id":"r","dataset":"gateway.access","action":"read"},"user":{"id":"e:1"}`
		if src != "" {
			s += `,"source":{"ip":"` + src + `"`
			if asn != 0 {
				s += `,"as":{"number":` + strconv.Itoa(asn) + `}`
			}
			s += `}`
		}
		return s + "}\n"
	}
	corp := terminated.Options{CorporatePrefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}, CorporateASNs: []uint32{64500}}
	for _, tc := range []struct {
		name string
		opts terminated.Options
		ev   string
		want bool
	}{
		{"public address, no networks configured", terminated.Options{}, req("103.152.112.40", 0), true},
		{"private address, no networks configured", terminated.Options{}, req("10.1.2.3", 0), false},
		{"shared CGNAT address", terminated.Options{}, req("100.64.1.2", 0), false},
		{"loopback", terminated.Options{}, req("::1", 0), false},
		{"no address", terminated.Options{}, req("", 0), false},
		{"outside the configured networks", corp, req("198.51.100.9", 0), true},
		{"private but outside the configured networks", corp, req("10.1.2.3", 0), true},
		{"inside a configured prefix", corp, req("203.0.113.7", 0), false},
		{"inside a configured AS", corp, req("198.51.100.9", 64500), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := detecttest.Findings(t, strings.NewReader(roster+tc.ev), 1, terminated.New(tc.opts))
			if len(got) != 1 || got[0].Kind != terminated.Kind || !got[0].Immediate {
				t.Fatalf("findings %+v, want one immediate %s", got, terminated.Kind)
			}
			if has := slices.Contains(got[0].Tags, event.TagExternalAccess); has != tc.want {
				t.Errorf("tags %v, want external %v", got[0].Tags, tc.want)
			}
		})
	}
}
