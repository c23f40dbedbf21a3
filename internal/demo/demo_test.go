package demo_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/demo"
	"github.com/haechi-sec/haechi/internal/event"
)

func TestEmbeddedContractIsTheContract(t *testing.T) {
	want, err := os.ReadFile("../../testdata/contract-events.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("contract.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("internal/demo/contract.ndjson differs from testdata/contract-events.ndjson; copy it again")
	}
}

func TestTrafficDecodesAndEndsBeforeNow(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	lines, err := demo.Traffic(now, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) < 1000 {
		t.Fatalf("only %d lines", len(lines))
	}
	rd := decode.NewReader(bytes.NewReader(bytes.Join(lines, []byte("\n"))), 0, 0)
	var prev time.Time
	n := 0
	for {
		var ev event.Event
		err := rd.Next(&ev)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("line does not decode: %v", err)
		}
		if ev.Time.Before(prev) || ev.Time.After(now) {
			t.Fatalf("line %d at %v: out of order or after now", ev.Line, ev.Time)
		}
		prev = ev.Time
		n++
	}
	if n != len(lines) {
		t.Fatalf("decoded %d of %d lines", n, len(lines))
	}
	again, _ := demo.Traffic(now, 7)
	if !bytes.Equal(bytes.Join(lines, nil), bytes.Join(again, nil)) {
		t.Fatal("same seed and time, different traffic")
	}
}
