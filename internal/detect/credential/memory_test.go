package credential_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/credential"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap credential keeps per tracked entity at scale (session
// credentials used from their network) against the 2 KiB budget, and its Footprint estimate
// against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{58, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, credential.New(credential.Options{}), 50000, func(i int) *event.Event {
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Second), Dataset: "aws.cloudtrail", Action: "GetObject",
			User: event.User{ID: "s:app-" + strconv.Itoa(i)}, Token: event.Token{ID: "ASIA" + strconv.Itoa(1000000+i)}, Source: event.Source{IP: addr(i), ASN: 16509}}
	})
	detecttest.CheckMemory(t, m)
}
