package fanout_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/fanout"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

var t0 = time.Date(2025, 6, 24, 0, 0, 0, 0, time.UTC)

// traffic builds NDJSON: for each source, n distinct principals each
// reading its own profile, spread over the given hour.
type traffic struct {
	b strings.Builder
	i int
}

func (tr *traffic) add(hour int, ip string, asn int, principals int, firstPrincipal int) {
	for p := 0; p < principals; p++ {
		tr.i++
		at := t0.Add(time.Duration(hour)*time.Hour + time.Duration(p*3000/max(principals, 1))*time.Second/1)
		as := ""
		if asn != 0 {
			as = fmt.Sprintf(`,"as":{"number":%d,"organization":{"name":"AS %d Org"}}`, asn, asn)
		}
		id := firstPrincipal + p
		fmt.Fprintf(&tr.b, `{"@timestamp":%q,"event":{"id":"e%d","dataset":"gateway.access","action":"member.profile.read"},"user":{"id":"m:%d"},"source":{"ip":%q%s},"records":{"type":"customer","ids":["%d"]}}`+"\n",
			at.Format(time.RFC3339Nano), tr.i, id, ip, as, id)
	}
}

func run(t *testing.T, tr *traffic, shards int) []event.Finding {
	t.Helper()
	return detecttest.Findings(t, strings.NewReader(tr.b.String()), shards, fanout.New(fanout.Options{}))
}

func TestHostingAddressFiresAtTheFloor(t *testing.T) {
	tr := &traffic{}
	tr.add(0, "203.0.113.7", 64500, 25, 1000)
	got := run(t, tr, 2)
	if len(got) != 1 {
		t.Fatalf("got %d findings, want 1: %+v", len(got), got)
	}
	f := got[0]
	if f.Entity != (event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.7"}) || f.Kind != fanout.Kind || f.Score != 70 {
		t.Errorf("finding %+v", f)
	}
	if !strings.Contains(f.Explanation, "acted as 20 distinct principals") || !strings.Contains(f.Explanation, "AS64500") {
		t.Errorf("explanation %q", f.Explanation)
	}
	if len(f.Evidence) != 4 || f.Evidence[0] != "e1" || f.Evidence[3] != "e20" {
		t.Errorf("evidence %v", f.Evidence)
	}
}

func TestBelowFloorIsQuiet(t *testing.T) {
	tr := &traffic{}
	tr.add(0, "203.0.113.7", 64500, 19, 1000)
	tr.add(1, "203.0.113.7", 64500, 19, 2000) // a new window: counts restart
	if got := run(t, tr, 1); len(got) != 0 {
		t.Fatalf("got %+v", got)
	}
}

func TestCarrierNATLearnsItsNetwork(t *testing.T) {
	tr := &traffic{}
	// Four hours of a carrier network: 30 NAT addresses, 60 customers each.
	next := 10000
	for h := 0; h < 4; h++ {
		for a := 0; a < 30; a++ {
			tr.add(h, fmt.Sprintf("198.51.100.%d", a+1), 4766, 60, next)
			next += 60
		}
	}
	// Hour 4: a NAT address with 150 customers is normal for this network;
	// one with 800 is not.
	tr.add(4, "198.51.100.1", 4766, 150, next)
	next += 150
	tr.add(4, "198.51.100.200", 4766, 800, next)
	for _, shards := range []int{1, 3} {
		got := run(t, tr, shards)
		var ids []string
		for _, f := range got {
			ids = append(ids, f.Entity.ID)
		}
		// The first hour has no history: the floor (20) applies, and the
		// NAT addresses fire — the documented cold start.
		var late []string
		for _, f := range got {
			if !f.Time.Before(t0.Add(4 * time.Hour)) {
				late = append(late, f.Entity.ID)
			}
		}
		if strings.Join(late, ",") != "198.51.100.200" {
			t.Fatalf("shards=%d: findings in hour 4 for %v, want only 198.51.100.200 (all: %v)", shards, late, ids)
		}
		for _, f := range got {
			if f.Time.After(t0.Add(time.Hour)) && f.Time.Before(t0.Add(4*time.Hour)) {
				t.Fatalf("shards=%d: a NAT address fired after its network had history: %+v", shards, f)
			}
		}
	}
}

func TestOwnHistoryRaisesTheBar(t *testing.T) {
	tr := &traffic{}
	tr.add(0, "192.0.2.10", 0, 100, 1) // no ASN: keyed by 192.0.2.0/24
	tr.add(1, "192.0.2.10", 0, 150, 1000)
	got := run(t, tr, 1)
	for _, f := range got {
		if f.Time.After(t0.Add(time.Hour)) {
			t.Fatalf("fired in hour 1 despite its own history of 100: %+v", f)
		}
	}
	if len(got) != 1 || !strings.Contains(got[0].Explanation, "192.0.2.0/24") {
		t.Fatalf("want one cold-start finding in hour 0 naming the /24, got %+v", got)
	}
}

func TestKeyDoesNotAllocate(t *testing.T) {
	d := fanout.New(fanout.Options{})
	var _ engine.Detector = d
	for _, src := range []string{"203.0.113.9", "2001:db8:1:2::5"} {
		ev := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}}
		ev.Source.IP = mustAddr(src)
		k1, ok := d.Key(ev)
		if !ok {
			t.Fatal("not keyed")
		}
		if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
			t.Errorf("%s: Key allocates %.0f times on a cache hit", src, n)
		}
		want := map[string]string{"203.0.113.9": "203.0.113.0/24", "2001:db8:1:2::5": "2001:db8:1:2::/64"}[src]
		if k1.ID != want {
			t.Errorf("%s keyed as %q, want %q", src, k1.ID, want)
		}
	}
	ev := &event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}, Source: event.Source{ASN: 4766}}
	ev.Source.IP = mustAddr("198.51.100.1")
	if k, _ := d.Key(ev); k.ID != "AS4766" {
		t.Errorf("keyed %q", k.ID)
	}
	if _, ok := d.Key(&event.Event{Dataset: "gateway.access", User: event.User{ID: "m:1"}}); ok {
		t.Error("an event without a source was keyed")
	}
}

func TestLoginFailuresAcrossAccounts(t *testing.T) {
	var b strings.Builder
	at := t0
	login := func(ip, user, outcome string) {
		at = at.Add(10 * time.Second)
		fmt.Fprintf(&b, `{"@timestamp":%q,"event":{"id":"l-%s-%s","dataset":"auth.login","action":"login","outcome":%q},"user":{"id":%q},"source":{"ip":%q,"as":{"number":64501}}}`+"\n",
			at.Format(time.RFC3339), ip, user, outcome, user, ip)
	}
	// A NAT address: many customers, mostly successful.
	for i := 0; i < 18; i++ {
		outcome := "success"
		if i%3 == 0 {
			outcome = "failure"
		}
		login("198.51.100.9", fmt.Sprintf("m:%d", i), outcome)
	}
	// A bot: one try per leaked account, nearly all failing.
	for i := 0; i < 6; i++ {
		outcome := "failure"
		if i == 2 {
			outcome = "success"
		}
		login("203.0.113.66", fmt.Sprintf("m:%d", 100+i), outcome)
	}
	got := detecttest.Findings(t, strings.NewReader(b.String()), 2, fanout.New(fanout.Options{}))
	var kinds []string
	for _, f := range got {
		kinds = append(kinds, f.Kind+"@"+f.Entity.ID)
	}
	if strings.Join(kinds, ",") != fanout.KindLoginFailures+"@203.0.113.66" {
		t.Fatalf("findings %v", kinds)
	}
	if !strings.Contains(got[0].Explanation, "5 distinct principals") || !strings.Contains(got[0].Explanation, "5 of its 6 logins failed") {
		t.Errorf("explanation %q", got[0].Explanation)
	}
}

func networkFindings(fs []event.Finding) []event.Finding {
	var out []event.Finding
	for _, f := range fs {
		if f.Kind == fanout.KindNetwork {
			out = append(out, f)
		}
	}
	return out
}

func TestNetworkRotation(t *testing.T) {
	tests := []struct {
		name  string
		build func(tr *traffic)
		want  int
	}{
		{"new network after a day of watching rotates over 40 addresses", func(tr *traffic) {
			tr.add(0, "198.51.100.1", 4766, 3, 1) // watching starts
			tr.add(25, "198.51.100.1", 4766, 3, 1)
			for a := 0; a < 40; a++ {
				tr.add(26, fmt.Sprintf("203.0.113.%d", a+1), 64999, 5, 100000+a*5)
			}
		}, 1},
		{"the same rotation from a network present at start-up is learned", func(tr *traffic) {
			for a := 0; a < 40; a++ {
				tr.add(0, fmt.Sprintf("203.0.113.%d", a+1), 64999, 5, 100000+a*5)
			}
		}, 0},
		{"one address is the per-address rule's, not rotation", func(tr *traffic) {
			tr.add(0, "198.51.100.1", 4766, 3, 1)
			tr.add(26, "203.0.113.1", 64999, 150, 100000)
		}, 0},
		{"a broadband network within its daily peak", func(tr *traffic) {
			next := 1
			for h := 0; h < 30; h++ {
				n := 40 // per address; 10 addresses → 400 customers an hour
				if h%24 < 6 {
					n = 5 // night
				}
				for a := 0; a < 10; a++ {
					tr.add(h, fmt.Sprintf("198.51.100.%d", a+1), 4766, n, next)
					next += n
				}
			}
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &traffic{}
			tt.build(tr)
			got := networkFindings(run(t, tr, 2))
			if len(got) != tt.want {
				t.Fatalf("got %d network findings, want %d: %+v", len(got), tt.want, got)
			}
			if tt.want == 1 {
				f := got[0]
				if f.Entity != (event.EntityKey{Kind: fanout.EntityNetwork, ID: "AS64999"}) || f.Score != 70 {
					t.Errorf("finding %+v", f)
				}
				for _, want := range []string{"acted as 100 distinct principals from 20 addresses (at most 5 from one)", "no history"} {
					if !strings.Contains(f.Explanation, want) {
						t.Errorf("explanation %q lacks %q", f.Explanation, want)
					}
				}
			}
		})
	}
}

// A small network growing with everyone (a campaign) is not rotation; the
// same growth while the rest of the traffic stays flat is.
func TestNetworkGrowthAgainstPopulation(t *testing.T) {
	build := func(surge bool) *traffic {
		tr := &traffic{}
		next := 1
		for h := 0; h < 30; h++ {
			small, rest := 30, 300 // per hour: the small network, everyone else
			if h == 29 {
				small = 150
				if surge {
					rest = 1500
				}
			}
			// Everyone else's traffic of the hour first, as it would have
			// mostly arrived by the time the small network's count is judged.
			for a := 0; a < 30; a++ {
				tr.add(h, fmt.Sprintf("198.51.100.%d", a+1), 4766, rest/30, next)
				next += rest / 30
			}
			for a := 0; a < 10; a++ {
				tr.add(h, fmt.Sprintf("192.0.2.%d", a+1), 64700, small/10, next)
				next += small / 10
			}
		}
		return tr
	}
	count := func(tr *traffic) int {
		n := 0
		for _, f := range networkFindings(run(t, tr, 1)) {
			if f.Entity.ID == "AS64700" {
				n++
			}
		}
		return n
	}
	if n := count(build(false)); n != 1 {
		t.Errorf("the small network alone grew 5×: %d findings, want 1", n)
	}
	if n := count(build(true)); n != 0 {
		t.Errorf("everyone grew 5×: %d findings about the small network, want 0", n)
	}
}

// Drill traffic (event.Event.Drill) is judged — every hourly drill address
// acting as many principals fires — but moves no baseline: a real address
// of the same network is judged as if no drill had run.
func TestDrillTrafficIsJudgedNotLearnt(t *testing.T) {
	tr := &traffic{}
	next := 10000
	for h := 0; h < 5; h++ {
		for a := 0; a < 30; a++ {
			tr.add(h, fmt.Sprintf("203.0.113.%d", a+1), 64500, 2, next)
			next += 2
		}
		if h < 4 {
			tr.add(h, fmt.Sprintf("198.18.0.%d", h+1), 64500, 40, next) // this hour's drill
			next += 40
		}
	}
	tr.add(4, "203.0.113.200", 64500, 25, next) // a real fan-out
	isDrill := func(ev *event.Event) bool { return strings.HasPrefix(ev.Source.IP.String(), "198.18.") }
	for _, shards := range []int{1, 3} {
		got := detecttest.DrillFindings(t, strings.NewReader(tr.b.String()), isDrill, shards, fanout.New(fanout.Options{}))
		var ids []string
		for _, f := range got {
			ids = append(ids, f.Entity.ID)
		}
		want := "198.18.0.1,198.18.0.2,198.18.0.3,198.18.0.4,203.0.113.200"
		if strings.Join(ids, ",") != want {
			t.Errorf("%d shards: findings about %v, want %s", shards, ids, want)
		}
		for _, f := range got {
			if f.Entity.ID == "203.0.113.200" && !strings.Contains(f.Explanation, "so the threshold was 20") {
				t.Errorf("the real fan-out was judged against drill traffic: %s", f.Explanation)
			}
		}
	}
}
