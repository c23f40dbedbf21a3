package report

import (
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
)

func TestDeadline(t *testing.T) {
	fri := time.Date(2025, 6, 27, 0, 0, 0, 0, time.UTC) // a Friday
	for _, tc := range []struct {
		rg   Regime
		want time.Time
	}{
		{Regime{Hours: 24}, fri.Add(24 * time.Hour)},
		{Regime{Hours: 72}, fri.Add(72 * time.Hour)},
		{Regime{BusinessDays: 4}, time.Date(2025, 7, 3, 0, 0, 0, 0, time.UTC)},  // Mon, Tue, Wed, Thu
		{Regime{BusinessDays: 1}, time.Date(2025, 6, 30, 0, 0, 0, 0, time.UTC)}, // over the weekend
	} {
		if got := deadline(fri, tc.rg); !got.Equal(tc.want) {
			t.Errorf("%+v: %v, want %v", tc.rg, got, tc.want)
		}
	}
}

func TestDefaultRegimesAreWellFormed(t *testing.T) {
	for _, rg := range DefaultRegimes() {
		if rg.Name == "" || (rg.Hours > 0) == (rg.BusinessDays > 0) {
			t.Errorf("bad regime %+v", rg)
		}
	}
}

// The regulators' clocks: personal-data regimes only for a personal-data
// breach, SEC 8-K as a materiality assessment, and PIPA's external access
// established by a departed employee from outside the company's networks.
func TestClocks(t *testing.T) {
	aware := time.Date(2025, 6, 27, 0, 0, 0, 0, time.UTC)
	s3Listing := &ledger.Result{Total: 1, ByType: map[string]int64{"s3_bucket": 1}, ByField: map[string]int64{}}
	s3Objects := &ledger.Result{Total: 85, ByType: map[string]int64{"s3_object": 84, "s3_bucket": 1}, ByField: map[string]int64{}}
	unlisted := &ledger.Result{Total: 12, ByType: map[string]int64{"customer": 12}, ByField: map[string]int64{}}
	nothing := &ledger.Result{ByType: map[string]int64{}, ByField: map[string]int64{}}
	personal := &ledger.Result{Total: 40, ByType: map[string]int64{"customer": 40}, ByField: map[string]int64{"name": 40, "phone": 12}}
	bulk := &ledger.Result{Total: 2500, ByType: map[string]int64{"customer": 2500}, ByField: map[string]int64{"email": 2500}}
	departed := []event.Finding{{Kind: "activity_after_termination", Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:7"}, Tags: []string{event.TagExternalAccess}}}
	departedInside := []event.Finding{{Kind: "activity_after_termination", Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:7"}}}
	principal := []event.EntityKey{{Kind: event.EntityPrincipal, ID: "e:7"}}
	source := []event.EntityKey{{Kind: event.EntitySource, ID: "203.0.113.9"}}
	type want struct{ answer, why string }
	for _, tc := range []struct {
		name     string
		scope    *ledger.Result
		entities []event.EntityKey
		findings []event.Finding
		// by regime, in DefaultRegimes order: PIPA subjects, PIPC, Network Act, GDPR, SEC
		want [5]want
	}{
		{"S3 listing of a non-personal object", s3Listing, source, nil, [5]want{
			{"no", "no personal-data field in the scope (1 records touched"}, {"no", "no personal-data field"}, {"no", "no personal-data field"},
			{"no", "no personal-data field"}, {"assess", "assess materiality"}}},
		// Twins: objects read (their content unknown: customer export files
		// are objects), records from a feed that lists no fields, nothing
		// touched yet — a personal-data breach is assumed until shown.
		{"S3 objects read, content unknown", s3Objects, source, nil, [5]want{
			{"yes", "which fields the 85 records touched exposed is not known"}, {"yes", "access from outside the organisation"}, {"yes", "not known"}, {"yes", ""}, {"assess", ""}}},
		{"records from a feed without fields", unlisted, principal, nil, [5]want{
			{"yes", "which fields the 12 records touched exposed is not known"}, {"no", "12 records touched, below 1000"}, {"yes", ""}, {"yes", ""}, {"assess", ""}}},
		{"nothing touched yet", nothing, source, nil, [5]want{
			{"yes", "which fields the 0 records touched exposed is not known"}, {"yes", ""}, {"yes", ""}, {"yes", ""}, {"assess", ""}}},
		{"personal data, few people, from inside", personal, principal, nil, [5]want{
			{"yes", "personal data exposed (40 records, 2 personal-data fields)"}, {"no", "40 records touched, below 1000, and no external access established"},
			{"yes", "personal data exposed"}, {"yes", "personal data exposed"}, {"assess", "assess materiality"}}},
		{"personal data, departed employee from outside", personal, principal, departed, [5]want{
			{"yes", "personal data exposed"}, {"yes", "access from outside the company's networks by a departed employee (principal:e:7)"},
			{"yes", ""}, {"yes", ""}, {"assess", ""}}},
		{"personal data, departed employee from inside", personal, principal, departedInside, [5]want{
			{"yes", ""}, {"no", "no external access established"}, {"yes", ""}, {"yes", ""}, {"assess", ""}}},
		{"personal data from a source address", personal, source, nil, [5]want{
			{"yes", ""}, {"yes", "access from outside the organisation"}, {"yes", ""}, {"yes", ""}, {"assess", ""}}},
		{"1,000 or more people", bulk, principal, nil, [5]want{
			{"yes", ""}, {"yes", "2500 records touched (threshold 1000)"}, {"yes", ""}, {"yes", ""}, {"assess", ""}}},
		{"scope unknown", nil, principal, nil, [5]want{
			{"yes", "the scope is unknown"}, {"no", "0 records touched, below 1000"}, {"yes", "the scope is unknown"}, {"yes", ""}, {"assess", ""}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := clocks(DefaultRegimes(), aware, tc.scope, externalAccess(tc.entities, tc.findings))
			if len(cs) != len(tc.want) {
				t.Fatalf("%d clocks", len(cs))
			}
			for i, c := range cs {
				if c.Answer() != tc.want[i].answer || !strings.Contains(c.Why, tc.want[i].why) {
					t.Errorf("%s: %s — %s, want %s — …%s…", c.Regime.Name, c.Answer(), c.Why, tc.want[i].answer, tc.want[i].why)
				}
				if strings.Contains(c.Why, "applies to any personal-data breach") {
					t.Errorf("%s: %q", c.Regime.Name, c.Why)
				}
			}
		})
	}
}

// The Markdown report says "assess" for a materiality clock.
func TestMarkdownAssess(t *testing.T) {
	r := &Report{Clocks: clocks(DefaultRegimes(), time.Date(2025, 6, 27, 0, 0, 0, 0, time.UTC), nil, ""), ScopeNote: "n"}
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "| assess — assess materiality") {
		t.Errorf("no assess in\n%s", b.String())
	}
	b.Reset()
	if err := r.WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "assess — assess materiality") {
		t.Errorf("no assess in the HTML")
	}
}
