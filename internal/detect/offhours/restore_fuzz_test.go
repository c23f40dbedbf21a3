package offhours_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/offhours"
)

func FuzzRestore(f *testing.F) {
	detecttest.FuzzRestore(f, "testdata/travelling/events.ndjson", offhours.New(offhours.Options{}))
}
