package fanout_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/fanout"
	"github.com/haechi-sec/haechi/internal/engine"
)

func TestGolden(t *testing.T) {
	detecttest.Golden(t, "testdata", func() []engine.Detector {
		return []engine.Detector{fanout.New(fanout.Options{})}
	})
}
