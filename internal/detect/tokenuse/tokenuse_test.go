package tokenuse

import (
	"hash/fnv"
	"testing"

	"github.com/haechi-sec/haechi/internal/event"
)

func TestKey(t *testing.T) {
	tok := event.Token{ID: "tk-1"}
	for _, tc := range []struct {
		name string
		ev   event.Event
		ok   bool
	}{
		{"mint", event.Event{Dataset: event.DatasetToken, Action: event.ActionTokenIssued, Token: tok}, true},
		{"use", event.Event{Dataset: event.DatasetGateway, Action: "member.profile.read", Token: tok}, true},
		{"refused use", event.Event{Dataset: event.DatasetGateway, Outcome: event.OutcomeFailure, Token: tok}, false},
		{"other token action", event.Event{Dataset: event.DatasetToken, Action: "token.revoked", Token: tok}, false},
		{"no token id", event.Event{Dataset: event.DatasetGateway}, false},
		{"other dataset", event.Event{Dataset: event.DatasetRoster, Token: tok}, false},
	} {
		k, ok := Key(&tc.ev)
		if ok != tc.ok || (ok && k != (event.EntityKey{Kind: event.EntityToken, ID: "tk-1"})) {
			t.Errorf("%s: %v %v, want ok=%v", tc.name, k, ok, tc.ok)
		}
	}
	ev := event.Event{Dataset: event.DatasetGateway, Token: tok}
	if n := testing.AllocsPerRun(100, func() { Key(&ev) }); n != 0 {
		t.Errorf("Key allocates %v times", n)
	}
}

// Hash is FNV-1a 64, the hash checkpoints of the token index were written
// with: it must never change.
func TestHash(t *testing.T) {
	for _, id := range []string{"", "tk-ffe01a9b", "ASIAEXAMPLE"} {
		h := fnv.New64a()
		h.Write([]byte(id))
		if got, want := Hash(id), h.Sum64(); got != want {
			t.Errorf("Hash(%q) = %x, want %x", id, got, want)
		}
	}
}
