package snap_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/snap"
)

func TestRoundTrip(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 42, time.UTC)
	var w snap.Writer
	w.Byte(7)
	w.Bool(true)
	w.Uint(math.MaxUint64)
	w.Int(-5)
	w.Float(math.Pi)
	w.String("héllo")
	w.Bytes([]byte{1, 2})
	w.Time(at)
	w.Time(time.Time{})
	r := snap.NewReader(w.B)
	if r.Byte() != 7 || !r.Bool() || r.Uint() != math.MaxUint64 || r.Int() != -5 || r.Float() != math.Pi ||
		r.String() != "héllo" || string(r.Bytes()) != "\x01\x02" || !r.Time().Equal(at) || !r.Time().IsZero() {
		t.Fatal("values differ after a round trip")
	}
	if err := r.End(); err != nil {
		t.Fatal(err)
	}
}

func TestCorrupt(t *testing.T) {
	var w snap.Writer
	w.String("abc")
	for cut := range len(w.B) {
		r := snap.NewReader(w.B[:cut])
		_ = r.String()
		if err := r.End(); !errors.Is(err, snap.ErrCorrupt) {
			t.Errorf("cut at %d: %v", cut, err)
		}
	}
	huge := snap.Writer{}
	huge.Uint(1 << 40)
	r := snap.NewReader(huge.B)
	if n := r.Count(8); n != 0 || r.Err() == nil {
		t.Errorf("a count beyond the input was accepted: %d", n)
	}
	left := snap.Writer{}
	left.Byte(1)
	left.Byte(2)
	r = snap.NewReader(left.B)
	r.Byte()
	if r.End() == nil {
		t.Error("bytes left over not reported")
	}
}

func FuzzReader(f *testing.F) {
	var w snap.Writer
	w.String("x")
	w.Float(1)
	w.Time(time.Unix(1, 0))
	f.Add(w.B)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := snap.NewReader(b)
		for r.Err() == nil && r.Len() > 0 {
			switch r.Byte() % 6 {
			case 0:
				_ = r.String()
			case 1:
				_ = r.Float()
			case 2:
				_ = r.Time()
			case 3:
				_ = r.Bytes()
			case 4:
				_ = r.Count(4)
			case 5:
				_ = r.Bool()
			}
		}
	})
}
