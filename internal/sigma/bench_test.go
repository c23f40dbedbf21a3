package sigma

import (
	"testing"
)

func BenchmarkMatch(b *testing.B) {
	hit := webEvent(nil)
	cases := []struct{ name, detection string }{
		{"equal", "s:\n  cs-method: GET\ncondition: s"},
		{"contains", "s:\n  cs-uri-stem|contains: members\ncondition: s"},
		{"contains_list_miss", "s:\n  cs-uri-stem|contains: ['../', '..\\', '..%2f', '%2e%2e/', '%2e%2e%2f', '/etc/passwd']\ncondition: s"},
		{"startswith_cased", "s:\n  cs-uri-stem|startswith|cased: /api/\ncondition: s"},
		{"glob", "s:\n  cs-uri-stem: '/api/*/members/*/pro?ile'\ncondition: s"},
		{"int_startswith", "s:\n  sc-status|startswith: '2'\ncondition: s"},
		{"regexp", "s:\n  cs-uri-stem|re: 'members/[0-9]+/'\ncondition: s"},
		{"cidr", "s:\n  c-ip|cidr: [10.0.0.0/8, 211.234.0.0/16]\ncondition: s"},
		{"keywords", "k:\n  - iphone\ncondition: k"},
		{"selection_and_filter", "s:\n  cs-user-agent|contains: [sqlmap, nikto, iphone]\n  cs-method: [GET, HEAD]\nf:\n  c-ip|cidr: 10.0.0.0/8\ncondition: s and not f"},
	}
	for _, c := range cases {
		r := mustRule(b, webLS, c.detection)
		if ok, _ := r.Match(hit); !ok && c.name != "contains_list_miss" {
			b.Fatalf("%s: no match", c.name)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = r.Match(hit)
			}
		})
	}
	// The testdata rule set over the testdata events: one op is one event
	// through every rule.
	rules, errs := ParseDir("testdata/rules")
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	events := readEvents(b, "testdata/events.ndjson")
	b.Run("testdata_ruleset_per_event", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			ev := events[i%len(events)]
			i++
			for _, r := range rules {
				_, _ = r.Match(ev)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, errs := ParseDir("testdata/rules"); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}
