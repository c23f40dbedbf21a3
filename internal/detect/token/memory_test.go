package token_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap token keeps per tracked entity at scale (tokens minted and
// then used) against the 2 KiB budget, and its Footprint estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, token.New(token.Options{}), 100000, func(i int) *event.Event {
		tok := "tk-" + strconv.Itoa(i/2)
		if i%2 == 0 {
			return &event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Dataset: event.DatasetToken, Action: event.ActionTokenIssued,
				User: event.User{ID: "c:" + strconv.Itoa(i/2)}, Token: event.Token{ID: tok, KeyID: "auth-2025", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)},
				Source: event.Source{IP: addr(i), Country: "KR", ASN: 4766}}
		}
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Dataset: event.DatasetGateway, Action: "member.profile.read",
			User: event.User{ID: "c:" + strconv.Itoa(i/2)}, Token: event.Token{ID: tok, KeyID: "auth-2025", IssuedAt: t0, ExpiresAt: t0.Add(time.Hour)},
			Source: event.Source{IP: addr(i), Country: "KR", ASN: 4766}}
	})
	detecttest.CheckMemory(t, m)
}
