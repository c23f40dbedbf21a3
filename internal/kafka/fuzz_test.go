package kafka

import (
	"bytes"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
)

func FuzzParseHeader(f *testing.F) {
	f.Add(header{Flags: copyKeyed, Watermark: time.Unix(1700000000, 5).UTC(), Earliest: time.Unix(1690000000, 0).UTC(), InPartition: 2, InOffset: 99}.append(nil))
	f.Add(header{Flags: copyBroadcast | copyKeyed, Watermark: engine.EndOfTime}.append(nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHeader(b)
		if err != nil {
			return
		}
		again, err := parseHeader(h.append(nil))
		if err != nil || !bytes.Equal(again.append(nil), h.append(nil)) {
			t.Fatalf("re-encoding changed it: %+v %+v %v", h, again, err)
		}
	})
}

func FuzzDecodeState(f *testing.F) {
	f.Add(encodeState([]engine.SnapshotPart{{Detector: "off_hours", Data: []byte{1, 2}}, {Detector: "x"}}))
	f.Add([]byte{1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		parts, err := decodeState(b)
		if err != nil {
			return
		}
		again, err := decodeState(encodeState(parts))
		if err != nil || len(again) != len(parts) {
			t.Fatalf("re-encoding changed it: %v", err)
		}
	})
}

func FuzzParseSource(f *testing.F) {
	f.Add(source{Topic: "events-by-key", Partition: 3, Offset: 42, Seq: 1}.append(nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := parseSource(b)
		if err != nil {
			return
		}
		if again, err := parseSource(s.append(nil)); err != nil || again != s {
			t.Fatalf("re-encoding changed it: %+v %+v %v", s, again, err)
		}
	})
}

func TestDedup(t *testing.T) {
	var d Dedup
	h := func(off int64, seq uint64) []byte {
		return source{Topic: "t", Partition: 1, Offset: off, Seq: seq}.append(nil)
	}
	steps := []struct {
		part  int32
		h     []byte
		fresh bool
	}{
		{0, h(5, 0), true}, {0, h(5, 1), true}, {0, h(5, 1), false}, {0, h(4, 9), false},
		{1, h(4, 9), true}, {0, h(6, 0), true}, {0, nil, true},
	}
	for i, s := range steps {
		if got := d.Fresh(s.part, s.h); got != s.fresh {
			t.Errorf("step %d: fresh %v, want %v", i, got, s.fresh)
		}
	}
}
