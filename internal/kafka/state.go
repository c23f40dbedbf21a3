package kafka

import (
	"fmt"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/snap"
)

const stateVersion = 1

// encodeState encodes a partition engine's snapshot parts (the store row
// carries the offset).
func encodeState(parts []engine.SnapshotPart) []byte {
	var w snap.Writer
	w.Byte(stateVersion)
	w.Uint(uint64(len(parts)))
	for _, p := range parts {
		w.String(p.Detector)
		w.Bytes(p.Data)
	}
	return w.B
}

// decodeState decodes what encodeState wrote.
func decodeState(b []byte) ([]engine.SnapshotPart, error) {
	r := snap.NewReader(b)
	if v := r.Byte(); r.Err() == nil && v != stateVersion {
		return nil, fmt.Errorf("kafka checkpoint: version %d, want %d", v, stateVersion)
	}
	n := r.Count(2)
	parts := make([]engine.SnapshotPart, 0, n)
	for range n {
		name := r.String()
		data := r.Bytes()
		parts = append(parts, engine.SnapshotPart{Detector: name, Data: data})
	}
	if err := r.End(); err != nil {
		return nil, fmt.Errorf("kafka checkpoint: %w", err)
	}
	return parts, nil
}

// source is where a finding came from: the repartition partition, the
// offset of the record whose processing emitted it and its sequence among
// that record's findings. A replay after a crash emits the same findings
// with the same sources.
type source struct {
	Topic     string
	Partition int32
	Offset    int64
	Seq       uint64
}

func (s source) append(b []byte) []byte {
	w := snap.Writer{B: b}
	w.String(s.Topic)
	w.Uint(uint64(s.Partition))
	w.Uint(uint64(s.Offset))
	w.Uint(s.Seq)
	return w.B
}

func parseSource(b []byte) (source, error) {
	r := snap.NewReader(b)
	var s source
	s.Topic = r.String()
	p, off := r.Uint(), r.Uint()
	s.Seq = r.Uint()
	if err := r.End(); err != nil {
		return source{}, fmt.Errorf("kafka source header: %w", err)
	}
	if p > 1<<31-1 || off > 1<<63-1 {
		return source{}, fmt.Errorf("kafka source header: out of range")
	}
	s.Partition, s.Offset = int32(p), int64(off)
	return s, nil
}

// Dedup drops findings records emitted twice: after a crash, the worker
// that takes a repartition partition over replays it from the last
// checkpoint and emits again, identically and in the same order, the
// findings its predecessor emitted after that checkpoint. A consumer of the
// findings topic keeps, per repartition partition, the newest (offset,
// sequence) it has accepted; a record at or below it is a repeat. Its state
// is a few bytes per repartition partition and belongs in the consumer's
// own checkpoint. Order holds per findings partition only (findings of one
// repartition partition go to many findings partitions), so the mark is
// kept per (findings partition, repartition partition). Not safe for
// concurrent use.
type Dedup struct {
	seen map[dedupKey][2]uint64
}

type dedupKey struct {
	findings int32
	topic    string
	part     int32
}

// Fresh reports whether the record of findings partition partition with
// the SourceHeader value h is new (and remembers it); a record without a
// valid header is always fresh.
func (d *Dedup) Fresh(partition int32, h []byte) bool {
	s, err := parseSource(h)
	if err != nil {
		return true
	}
	if d.seen == nil {
		d.seen = map[dedupKey][2]uint64{}
	}
	k := dedupKey{partition, s.Topic, s.Partition}
	at := [2]uint64{uint64(s.Offset), s.Seq}
	if last, ok := d.seen[k]; ok && (at[0] < last[0] || at[0] == last[0] && at[1] <= last[1]) {
		return false
	}
	d.seen[k] = at
	return true
}
