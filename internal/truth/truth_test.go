package truth_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

func TestRoundTrip(t *testing.T) {
	in := &truth.Truth{Seed: 7, Scenarios: []truth.Scenario{{
		Name: "ghost-key", AttackerEntities: []event.EntityKey{{Kind: event.EntitySigningKey, ID: "auth-2022-11"}},
		MaliciousEventIDs: []string{"a", "b"}, FirstMalicious: time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC),
		LastMalicious: time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC), RecordsTouched: 2,
	}}, HardBenign: []truth.Benign{{Name: "backfill", Entities: []event.EntityKey{{Kind: event.EntityPrincipal, ID: "s:backfill"}}, EventIDs: []string{"c"}}}}
	var buf bytes.Buffer
	if err := in.Write(&buf); err != nil {
		t.Fatal(err)
	}
	out, err := truth.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(in, out); d != "" {
		t.Fatal(d)
	}
}

func TestReadRejects(t *testing.T) {
	for _, tc := range []struct{ doc, want string }{
		{`{"seed":1,"scenarios":[{"name":"x"}],"hard_benign":[]}`, "no malicious_event_ids"},
		{`{"seed":1,"scenarios":[],"hard_benign":[],"extra":1}`, "unknown field"},
		{`{"seed":1,"scenarios":[{"name":"x","malicious_event_ids":["a"]},{"name":"x","malicious_event_ids":["b"]}]}`, "duplicate name"},
		{`not json`, "invalid character"},
	} {
		if _, err := truth.Read(strings.NewReader(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.doc, err, tc.want)
		}
	}
}
