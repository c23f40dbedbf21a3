package spool

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// BenchmarkAppend measures 4 KiB Appends with real fsync on the temp
// directory's disk, from 1, 8 and 64 concurrent writers.
func BenchmarkAppend(b *testing.B) {
	for _, writers := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			s, err := Open(Options{Dir: b.TempDir(), MaxBytes: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			rec := make([]byte, 4096)
			b.SetBytes(int64(len(rec)))
			var wg sync.WaitGroup
			work := make(chan struct{}, b.N)
			for range b.N {
				work <- struct{}{}
			}
			close(work)
			b.ResetTimer()
			t0 := time.Now()
			for range writers {
				wg.Go(func() {
					for range work {
						if _, _, err := s.Append(context.Background(), rec); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			el := time.Since(t0).Seconds()
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(st.Appends)/el, "appends/s")
			b.ReportMetric(float64(st.Syncs)/el, "syncs/s")
		})
	}
}

// BenchmarkReader measures reading 4 KiB records back.
func BenchmarkReader(b *testing.B) {
	s, err := Open(Options{Dir: b.TempDir(), MaxBytes: 1 << 40, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rec := make([]byte, 4096)
	batch := make([][]byte, 64)
	for i := range batch {
		batch[i] = rec
	}
	const held = 16384 // 64 MiB on disk; the reader wraps around
	for n := 0; n < held; n += len(batch) {
		if _, _, err := s.Append(context.Background(), batch...); err != nil {
			b.Fatal(err)
		}
	}
	r, err := s.Reader(1)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { r.Close() }()
	b.SetBytes(int64(len(rec)))
	b.ResetTimer()
	for i := range b.N {
		if i > 0 && i%held == 0 {
			r.Close()
			if r, err = s.Reader(1); err != nil {
				b.Fatal(err)
			}
		}
		if _, _, err := r.Next(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
