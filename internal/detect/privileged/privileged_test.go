package privileged_test

import (
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/privileged"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func seoul(t testing.TB) *time.Location {
	loc, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// The goldens run with the company in Seoul, 08:00–20:00 on weekdays:
//   - takeover: an administrator who worked from the Seoul office, then on
//     a Sunday at 02:00 Seoul time from a US hosting network, exporting in
//     pages of 200. A new country and off-hours at the first request, the
//     bulk export at the first export page (not the second);
//   - weekend_maintenance (hard-benign twin): the same administrator's
//     Saturday maintenance from the office — known network, known country,
//     no export — is only the off-hours line; another administrator's
//     weekday work (30-record exports) is nothing;
//   - idle_return: back 61 days after the roster's identity.last_active;
//     first seen 14 days into watching; a first activity two days into
//     watching and a 14-day gap are nothing;
//   - takeover_domestic, takeover_workday, takeover_office_night: the
//     admin's account used at night from a Korean network it never used, in
//     office hours from one, and at night from the office; each exports in
//     pages of 100 scattered records: the export line at the first page;
//   - night_new_network (hard-benign twin): metrics at 22:00 from a new home
//     network, no export: only the off-hours line;
//   - traveller_habit: a week in the US (the company's night): a new country
//     and off-hours on its first day only, not the next days nor its
//     office-VPN session (it is still abroad); two Saturdays of maintenance
//     at home: off-hours on the first only (a habit);
//   - not_privileged: a CS agent and a customer abroad at night: nothing.
func TestGolden(t *testing.T) {
	loc := seoul(t)
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{privileged.New(privileged.Options{Location: loc})}
	})
}

func TestKeyDoesNotAllocate(t *testing.T) {
	d := privileged.New(privileged.Options{})
	evs := []*event.Event{
		{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: []string{"cs-agent", "DB-Admin"}}},
		{Dataset: "gateway.access", User: event.User{ID: "m:1"}},
		{Dataset: event.DatasetRoster, Identity: event.Identity{ID: "e:1", Roles: []string{"admin"}}},
	}
	for _, ev := range evs {
		if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
			t.Fatalf("Key allocates %.0f times", n)
		}
	}
}

func TestKeyRoles(t *testing.T) {
	d := privileged.New(privileged.Options{})
	for _, tt := range []struct {
		roles []string
		want  string
	}{
		{[]string{"admin"}, "admin"},
		{[]string{"cs-agent", "DB-Admin"}, "DB-Admin"},
		{[]string{"admin-readonly"}, "admin-readonly"},
		{[]string{"Superuser"}, "Superuser"},
		{[]string{"cs-agent"}, ""},
		{[]string{"administration-clerk"}, ""},
		{[]string{"badminton"}, ""},
		{nil, ""},
	} {
		ev := &event.Event{Dataset: "gateway.access", User: event.User{ID: "e:1", Roles: tt.roles}}
		k, ok := d.Key(ev)
		if ok != (tt.want != "") || k.ID != tt.want {
			t.Errorf("Key(roles %v) = %v, %v; want role %q", tt.roles, k, ok, tt.want)
		}
	}
}

// The learnt goldens run with no time zone configured: the working hours
// are learnt from the admin role's own activity.
//   - night_takeover: three administrators work Seoul office hours; an
//     evening action on the first day is not judged (less than a day of
//     profile); e:1's account at 23:10 Seoul time from a US hosting
//     network is off-hours (and a new country), its export the export
//     line; a Friday-morning action from the office is nothing, nor — a
//     learnt profile has no weekdays — a Saturday-morning one.
func TestGoldenLearnt(t *testing.T) {
	detecttest.Golden(t, "testdata/learnt", func() []engine.Detector {
		return []engine.Detector{privileged.New(privileged.Options{})}
	})
}
