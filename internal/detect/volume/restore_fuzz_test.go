package volume_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/volume"
)

func FuzzRestore(f *testing.F) {
	detecttest.FuzzRestore(f, "testdata/enumeration/events.ndjson", volume.New(volume.Options{}))
}
