package keyposture_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/keyposture"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{keyposture.New(keyposture.Options{})}
	})
}

// The contract case is a copy of the repository's contract events.
func TestContractCopy(t *testing.T) {
	want, err := os.ReadFile("../../../testdata/contract-events.ndjson")
	if err != nil {
		t.Skip(err)
	}
	got, err := os.ReadFile("testdata/contract/events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("testdata/contract/events.ndjson differs from testdata/contract-events.ndjson; copy it again")
	}
}

func TestOptionsDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   keyposture.Options
		want keyposture.Options
	}{
		{"zero", keyposture.Options{}, keyposture.Options{RotationAge: 365 * 24 * time.Hour, Reraise: 24 * time.Hour}},
		{"negative", keyposture.Options{RotationAge: -time.Hour, Reraise: -time.Minute}, keyposture.Options{RotationAge: 365 * 24 * time.Hour, Reraise: 24 * time.Hour}},
		{"rotation set", keyposture.Options{RotationAge: 90 * 24 * time.Hour}, keyposture.Options{RotationAge: 90 * 24 * time.Hour, Reraise: 24 * time.Hour}},
		{"reraise set", keyposture.Options{Reraise: 6 * time.Hour}, keyposture.Options{RotationAge: 365 * 24 * time.Hour, Reraise: 6 * time.Hour}},
		{"both set", keyposture.Options{RotationAge: time.Hour, Reraise: time.Minute}, keyposture.Options{RotationAge: time.Hour, Reraise: time.Minute}},
	} {
		if got := keyposture.New(tc.in).Options(); got != tc.want {
			t.Errorf("%s: Options() = %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestKey(t *testing.T) {
	d := keyposture.New(keyposture.Options{})
	for _, tc := range []struct {
		name string
		ev   event.Event
		ok   bool
	}{
		{"roster", event.Event{Dataset: event.DatasetRoster, Identity: event.Identity{ID: "e:1"}}, true},
		{"roster without id", event.Event{Dataset: event.DatasetRoster, User: event.User{ID: "e:1"}}, false},
		{"inventory", event.Event{Dataset: event.DatasetKeys, Key: event.Key{ID: "k"}}, true},
		{"inventory without id", event.Event{Dataset: event.DatasetKeys}, false},
		{"token use", event.Event{Dataset: event.DatasetGateway, User: event.User{ID: "m:1"}, Token: event.Token{KeyID: "k"}}, false},
	} {
		key, ok := d.Key(&tc.ev)
		if ok != tc.ok || (ok && key != keyposture.InventoryEntity) {
			t.Errorf("%s: Key = %v, %v; want ok=%v", tc.name, key, ok, tc.ok)
		}
	}
}

func TestKeyDoesNotAllocate(t *testing.T) {
	d := keyposture.New(keyposture.Options{})
	evs := []*event.Event{
		{Dataset: event.DatasetRoster, Identity: event.Identity{ID: "e:1"}},
		{Dataset: event.DatasetKeys, Key: event.Key{ID: "k"}},
		{Dataset: event.DatasetGateway, User: event.User{ID: "m:1"}},
	}
	for _, ev := range evs {
		if n := testing.AllocsPerRun(100, func() { d.Key(ev) }); n != 0 {
			t.Fatalf("Key(%s) allocates %.0f times", ev.Dataset, n)
		}
	}
}

// Custom options: a 30-day rotation age and a 12-hour re-raise period. The
// rotation age is reached at 2025-01-31T00:00, but the watermark first
// passes it at 12:00 (event 12:05 minus the 5-minute lateness): one finding
// then, at the latest period boundary, not one per boundary skipped.
func TestCustomOptions(t *testing.T) {
	const events = `{"@timestamp":"2025-01-01T00:00:00Z","event":{"id":"k","dataset":"keys.inventory","action":"key.created"},"key":{"id":"sig","custodians":["e:1"]}}
{"@timestamp":"2025-01-31T00:00:00Z","event":{"id":"t","dataset":"hr.roster","action":"identity.terminated"},"identity":{"id":"e:1","status":"terminated"}}
{"@timestamp":"2025-01-31T12:05:00Z","event":{"dataset":"gateway.access","action":"read"},"user":{"id":"m:1"}}
{"@timestamp":"2025-02-01T12:00:00Z","event":{"dataset":"gateway.access","action":"read"},"user":{"id":"m:1"}}
`
	d := keyposture.New(keyposture.Options{RotationAge: 30 * 24 * time.Hour, Reraise: 12 * time.Hour})
	var got []string
	for _, f := range detecttest.Findings(t, strings.NewReader(events), 2, d) {
		got = append(got, f.Time.UTC().Format(time.RFC3339)+" "+f.Kind)
		custodian := f.Kind == keyposture.KindCustodianTerminated
		if f.Immediate != custodian || (custodian && f.Severity != event.SeverityHigh) || (!custodian && f.Severity != event.SeverityMedium) {
			t.Errorf("finding %+v: wrong severity or immediacy", f)
		}
		if f.Entity != (event.EntityKey{Kind: event.EntitySigningKey, ID: "sig"}) || f.Detector != keyposture.Name {
			t.Errorf("finding %+v: wrong entity or detector", f)
		}
	}
	want := []string{
		"2025-01-31T00:00:00Z " + keyposture.KindCustodianTerminated,
		"2025-01-31T12:00:00Z " + keyposture.KindCustodianTerminated,
		"2025-01-31T12:00:00Z " + keyposture.KindRotationOverdue,
		"2025-02-01T00:00:00Z " + keyposture.KindCustodianTerminated,
		"2025-02-01T00:00:00Z " + keyposture.KindRotationOverdue,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("findings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
