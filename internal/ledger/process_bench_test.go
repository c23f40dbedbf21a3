//go:build unix

package ledger

import (
	"context"
	"fmt"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

type discardSink struct{}

func (discardSink) MergeLedger(context.Context, []store.LedgerDictEntry, []store.LedgerRow) error {
	return nil
}

// BenchmarkRecord is the ledger's cost per event on replay's path: every
// dimension's shard records a customer's read (orders: 20 dictionary-
// numbered ids, one field; addresses: 3 ids, four fields; profiles: 1
// numeric id, two fields), in batches numbered once (Number), and the rows are serialized for the writer
// (replay's hand-offs: 4 Mi touches). The shards run on one goroutine;
// cpu-ns/event is the process's CPU time (the writer and the collector
// included) per event: on a shared machine it moves far less with other
// processes' load than ns/op.
func BenchmarkRecord(b *testing.B) {
	const customers = 20000
	evs := make([]event.Event, 0, 3*customers)
	t0 := time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC)
	for c := range customers {
		cust := 10000000 + c
		base := event.Event{
			Time:    t0.Add(time.Duration(c) * 4 * time.Second),
			Dataset: "gateway.access",
			User:    event.User{ID: fmt.Sprintf("c:%d", cust)},
			Token:   event.Token{ID: fmt.Sprintf("t%d", cust), KeyID: "k1"},
			Source:  event.Source{IP: netip.AddrFrom4([4]byte{10, byte(c >> 16), byte(c >> 8), byte(c)}), Country: "KR"},
		}
		orders := base
		for n := range 20 {
			orders.Records.IDs = append(orders.Records.IDs, fmt.Sprintf("o:%d:%d", cust, n))
		}
		orders.Records.Type, orders.Records.Fields = "order", []string{"order_history"}
		addr := base
		addr.Records = event.Records{Type: "address", IDs: []string{fmt.Sprintf("a:%d:1", cust), fmt.Sprintf("a:%d:2", cust), fmt.Sprintf("a:%d:3", cust)},
			Fields: []string{"name", "phone", "address", "entrance_code"}}
		prof := base
		prof.Records = event.Records{Type: "customer", IDs: []string{fmt.Sprint(cust)}, Fields: []string{"name", "email"}}
		evs = append(evs, orders, addr, prof)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for i := 0; i < b.N; {
		l := New(discardSink{}, nil, Options{FlushEvery: 6 * time.Hour, MaxDirty: 4 << 20})
		done := make(chan error, 1)
		go func() { done <- l.Run(context.Background()) }()
		type ds struct {
			d  *Detector
			sh *shard
		}
		var shards []ds
		for _, dim := range Dimensions {
			d := l.Detector(dim)
			shards = append(shards, ds{d, d.NewShard().(*shard)})
		}
		// Batches of 1,024 numbered once (Number), as the pipeline submits them.
		for j := 0; j < len(evs) && i < b.N; j += 1024 {
			batch := evs[j:min(j+1024, len(evs), j+b.N-i)]
			l.Number(batch)
			for k := range batch {
				ev := &batch[k]
				for _, s := range shards {
					if key, ok := s.d.Key(ev); ok {
						s.sh.Process(nil, key, ev)
					}
				}
			}
			i += len(batch)
		}
		for _, s := range shards {
			s.sh.handoff()
		}
		if err := l.Close(); err != nil {
			b.Fatal(err)
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/event")
}

// processCPU returns the CPU time (user and system) this process has
// used, 0 when unknown.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
