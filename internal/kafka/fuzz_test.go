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
	f.Add(header{Flags: copyKeyed, Watermark: time.Unix(1700000000, 0).UTC(),
		Streams: []engine.StreamTime{{Dataset: "auth.token", Time: time.Unix(1700000290, 7).UTC()}}}.append(nil))
	f.Add(header{Flags: copyKeyed, Watermark: time.Unix(1700000000, 0).UTC(), InPartition: 1, Arrived: time.Unix(1700000300, 0).UTC()}.append(nil))
	// A version 1 header, written before Streams, and a version 2 one,
	// before Arrived.
	f.Add([]byte{1, copyKeyed, 0, 0, 0, 0, 0})
	f.Add([]byte{2, copyKeyed, 0, 0, 0, 0, 0, 0})
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

// A version 3 header carries the input record's timestamp; older versions
// read without it.
func TestHeaderArrived(t *testing.T) {
	at := time.Unix(1700000300, 0).UTC()
	h, err := parseHeader(header{Flags: copyKeyed, Watermark: time.Unix(1700000000, 0).UTC(), Arrived: at}.append(nil))
	if err != nil || !h.Arrived.Equal(at) {
		t.Fatalf("round trip: %+v %v", h, err)
	}
	h, err = parseHeader([]byte{2, copyKeyed, 0, 0, 0, 0, 0, 0})
	if err != nil || !h.Arrived.IsZero() {
		t.Fatalf("version 2: %+v %v", h, err)
	}
	if _, err := parseHeader([]byte{5, copyKeyed, 0, 0, 0, 0, 0, 0}); err == nil {
		t.Fatal("version 5 accepted")
	}
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

func FuzzParseMark(f *testing.F) {
	f.Add(appendMark(nil, time.Unix(1700000000, 5).UTC()))
	f.Add(appendMark(nil, engine.EndOfTime))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		wm, err := parseMark(b)
		if err != nil {
			return
		}
		if again, err := parseMark(appendMark(nil, wm)); err != nil || !again.Equal(wm) {
			t.Fatalf("re-encoding changed it: %v %v %v", wm, again, err)
		}
	})
}

func FuzzDecodeAlertState(f *testing.F) {
	var d Dedup
	d.Fresh(3, source{Topic: "ev-by-principal", Partition: 1, Offset: 42, Seq: 2}.append(nil))
	f.Add(encodeAlertState(alertState{stage: []byte(`{"v":1}`), dedup: d,
		marks: map[srcPart]time.Time{{"ev-by-key", 0}: time.Unix(1700000000, 0).UTC(), {"ev-by-role", 1}: engine.EndOfTime},
		wm:    time.Unix(1699999000, 0).UTC()}))
	f.Add(encodeAlertState(alertState{}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeAlertState(b)
		if err != nil {
			return
		}
		enc := encodeAlertState(s)
		again, err := decodeAlertState(enc)
		if err != nil || !bytes.Equal(encodeAlertState(again), enc) {
			t.Fatalf("re-encoding changed it: %v", err)
		}
	})
}

func TestAlertStateRoundTrip(t *testing.T) {
	var d Dedup
	d.Fresh(3, source{Topic: "ev-by-principal", Partition: 1, Offset: 42, Seq: 2}.append(nil))
	d.Fresh(3, source{Topic: "ev-by-key", Partition: 0, Offset: 7, Seq: 0}.append(nil))
	in := alertState{stage: []byte("state"), dedup: d,
		marks: map[srcPart]time.Time{{"ev-by-key", 0}: time.Unix(1700000000, 0).UTC(), {"ev-by-role", 1}: engine.EndOfTime},
		wm:    time.Unix(1699999000, 0).UTC()}
	out, err := decodeAlertState(encodeAlertState(in))
	if err != nil {
		t.Fatal(err)
	}
	if string(out.stage) != "state" || !out.wm.Equal(in.wm) || len(out.marks) != 2 || !out.marks[srcPart{"ev-by-role", 1}].Equal(engine.EndOfTime) {
		t.Fatalf("decoded %+v", out)
	}
	// The restored marks drop what was accepted before.
	if out.dedup.Fresh(3, source{Topic: "ev-by-principal", Partition: 1, Offset: 42, Seq: 2}.append(nil)) {
		t.Fatal("a repeat is fresh after a restore")
	}
	if !out.dedup.Fresh(3, source{Topic: "ev-by-principal", Partition: 1, Offset: 42, Seq: 3}.append(nil)) {
		t.Fatal("a new finding is a repeat after a restore")
	}
}

func TestMarkDue(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		prev, wm time.Time
		due      bool
	}{
		{time.Time{}, t0, true},
		{t0, t0.Add(4 * time.Minute), false},
		{t0.Add(4 * time.Minute), t0.Add(5 * time.Minute), true},
		{t0.Add(5 * time.Minute), t0.Add(5 * time.Minute), false},
		{t0.Add(5 * time.Minute), t0, false},
		{t0, engine.EndOfTime, true},
		{engine.EndOfTime, engine.EndOfTime, false},
	}
	for i, s := range steps {
		if got := markDue(s.prev, s.wm, 5*time.Minute); got != s.due {
			t.Errorf("step %d: due %v, want %v", i, got, s.due)
		}
	}
}
