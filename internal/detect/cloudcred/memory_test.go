package cloudcred_test

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/cloudcred"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/event"
)

// TestMemoryPerEntity measures the heap cloudcred keeps per tracked entity at scale (workload
// sessions of EC2 instances, each used from its own address) against the 2 KiB budget, and its
// Footprint estimate against the measured heap.
func TestMemoryPerEntity(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MB")
	}
	t0 := time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{52, byte(i >> 16), byte(i >> 8), byte(i)}) }
	m := detecttest.MemoryPerEntity(t, cloudcred.New(cloudcred.Options{ProviderASNs: cloudcred.DefaultProviderASNs}), 50000, func(i int) *event.Event {
		id := strconv.FormatUint(uint64(0x10000000+i), 16)
		return &event.Event{Time: t0.Add(time.Duration(i) * time.Millisecond), Dataset: "aws.cloudtrail", Action: "GetObject",
			User:   event.User{ID: "arn:aws:sts::123456789012:assumed-role/app/i-" + id},
			Token:  event.Token{ID: "ASIA" + strconv.Itoa(1000000+i)},
			Source: event.Source{IP: addr(i), ASN: 16509, Country: "KR"}}
	})
	detecttest.CheckMemory(t, m)
}
