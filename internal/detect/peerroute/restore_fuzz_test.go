package peerroute_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/detect/peerroute"
)

func FuzzRestore(f *testing.F) {
	detecttest.FuzzRestore(f, "testdata/direct_route/events.ndjson", peerroute.New(peerroute.Options{}))
}
