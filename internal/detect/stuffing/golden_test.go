package stuffing_test

import (
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/stuffing"
	"github.com/haechi-sec/haechi/internal/engine"
)

// The cases (testdata/gen.py writes them) hold hours, not days, of
// history: a 2 h warmup stands for the default 24 h; every other option
// is the default.
func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{stuffing.New(stuffing.Options{Warmup: 2 * time.Hour})}
	})
}
