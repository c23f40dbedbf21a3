package track

import (
	"fmt"
	"testing"

	"github.com/haechi-sec/haechi/internal/store"
)

// BenchmarkSaveIntoIncident measures saving one batch of 16 alerts of an
// incident of n other stored alerts (a forged-key flood), on
// SQLite, against the same save without incidents: the keeper reloads
// and regroups the incident's alerts on every batch.
func BenchmarkSaveIntoIncident(b *testing.B) {
	for _, n := range []int{0, 100, 1000} {
		for _, keep := range []bool{false, true} {
			b.Run(fmt.Sprintf("incident=%d/keeper=%v", n, keep), func(b *testing.B) {
				var opts store.Options
				if keep {
					opts.Incidents = New(Options{})
				}
				s, err := store.Open(b.Context(), b.TempDir(), opts)
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				all := ghostKey("", t0, n+16)
				for i := 0; i < n; i += 64 {
					if err := s.SaveAlerts(b.Context(), all[i:min(i+64, n)]); err != nil {
						b.Fatal(err)
					}
				}
				b.ResetTimer()
				batch := all[n:]
				for range b.N {
					// The same 16 alerts again (as an alert is saved again
					// when it grows): the incident stays n+16 big.
					if err := s.SaveAlerts(b.Context(), batch); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
