package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/snap"
)

// headerKey names the record header the re-keying stage writes on every
// record of a repartition topic.
const headerKey = "haechi"

// headerVersion 4 made the record's value the event's binary form
// (appendEvent) instead of the input's JSON line, 3 added Arrived, 2
// Streams; headers of versions 1–3 (written before) are still read, their
// values as JSON lines.
const headerVersion = 4

// Copy flags: why a record of a repartition topic is on its partition.
const (
	// copyKeyed: some detector keys the event on an entity of the topic's
	// kind that hashes to this partition.
	copyKeyed = 1 << iota
	// copyBroadcast: some Broadcaster asked for the event on every shard.
	copyBroadcast
)

// header is what travels with a re-keyed event: the stream's time as the
// re-keying stage saw it just before the event, so that every partition's
// engine stamps lateness, fires timers and judges "before haechi started"
// exactly as one engine over the whole input would.
type header struct {
	// version is the version the header was read with (append writes
	// headerVersion): from 4 on the value is the event's binary form.
	version byte
	Flags   byte
	// Watermark is the input's watermark before this event (newest event
	// time seen minus the allowed lateness, or an explicit advance).
	Watermark time.Time
	// Earliest is the earliest activity time seen, this event included
	// (zero while only reference data has been seen).
	Earliest time.Time
	// Input partition and offset of the event (evidence references of
	// events without an id).
	InPartition int32
	InOffset    int64
	// Streams is the progress of the streams detectors watch
	// (engine.StreamWatcher) before this event, over the whole input
	// partition: a partition sees only its share of the issuer's stream.
	Streams []engine.StreamTime
	// Arrived is the input record's timestamp, at most the re-keying
	// stage's clock (see arrival): the partition engine's
	// arrival clock, by which an input partition that has sent nothing
	// for a while stops holding the others' time back (engine.Batch).
	Arrived time.Time
}

func (h header) append(b []byte) []byte {
	w := snap.Writer{B: b}
	w.Byte(headerVersion)
	w.Byte(h.Flags)
	end := h.Watermark.Equal(engine.EndOfTime)
	w.Bool(end)
	if !end {
		w.Time(h.Watermark)
	}
	w.Time(h.Earliest)
	w.Uint(uint64(h.InPartition))
	w.Uint(uint64(h.InOffset))
	w.Uint(uint64(len(h.Streams)))
	for _, s := range h.Streams {
		w.String(s.Dataset)
		w.Time(s.Time)
	}
	w.Time(h.Arrived)
	return w.B
}

// parseHeader decodes what header.append wrote.
func parseHeader(b []byte) (header, error) {
	r := snap.NewReader(b)
	v := r.Byte()
	if r.Err() == nil && (v < 1 || v > headerVersion) {
		return header{}, fmt.Errorf("kafka header: version %d, want %d", v, headerVersion)
	}
	h := header{version: v}
	h.Flags = r.Byte()
	if r.Bool() {
		h.Watermark = engine.EndOfTime
	} else {
		h.Watermark = r.Time()
	}
	h.Earliest = r.Time()
	p, off := r.Uint(), r.Uint()
	if v >= 2 {
		n := r.Count(2)
		for range n {
			ds := r.String()
			h.Streams = append(h.Streams, engine.StreamTime{Dataset: ds, Time: r.Time()})
		}
	}
	if v >= 3 {
		h.Arrived = r.Time()
	}
	if err := r.End(); err != nil {
		return header{}, fmt.Errorf("kafka header: %w", err)
	}
	if h.Flags&^(copyKeyed|copyBroadcast) != 0 || p > 1<<31-1 || off > 1<<63-1 {
		return header{}, errors.New("kafka header: out of range")
	}
	h.InPartition, h.InOffset = int32(p), int64(off)
	return h, nil
}

// MarkHeader is the header of a findings record that carries no finding
// but a watermark mark: the repartition partition named by its
// SourceHeader has reached this watermark, and every finding it emitted
// before is earlier in this findings partition. Detection sends one to
// every findings partition whenever a partition's watermark crosses a
// multiple of Options.MarkEvery (and at the end of input); the alert stage
// closes alert windows at the minimum over all repartition partitions.
// Consumers of findings skip records with this header (their value is
// empty).
const MarkHeader = "haechi-wm"

// appendMark encodes a watermark mark (EndOfTime as a flag).
func appendMark(b []byte, wm time.Time) []byte {
	w := snap.Writer{B: b}
	end := !wm.Before(engine.EndOfTime)
	w.Bool(end)
	if !end {
		w.Time(wm)
	}
	return w.B
}

// parseMark decodes what appendMark wrote.
func parseMark(b []byte) (time.Time, error) {
	r := snap.NewReader(b)
	var t time.Time
	if r.Bool() {
		t = engine.EndOfTime
	} else {
		t = r.Time()
	}
	if err := r.End(); err != nil {
		return time.Time{}, fmt.Errorf("kafka mark header: %w", err)
	}
	return t, nil
}

// markDue reports whether a partition whose watermark moved from prev to
// wm sends a mark: when wm crosses a multiple of every, or reaches the end.
// It depends on the watermarks only, so a successor replaying a partition
// sends the same marks with the same sources as its predecessor.
func markDue(prev, wm time.Time, every time.Duration) bool {
	if !wm.After(prev) {
		return false
	}
	if !wm.Before(engine.EndOfTime) {
		return true
	}
	return wm.Truncate(every).After(prev.Truncate(every))
}
