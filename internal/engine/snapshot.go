package engine

import "github.com/haechi-sec/haechi/internal/snap"

// Snapshotter is implemented by a detector's Shard whose learnt state —
// baselines, profiles, peer histograms — must survive a restart, so a
// restarted serve does not go back to a cold start.
//
// Contract: AppendSnapshot is called on the shard's goroutine between two
// Process calls (at a consistent point of the stream) and writes the whole
// state, starting with a version byte of the detector's choosing; Restore
// is called on a fresh shard before any event and replaces its state with
// one written by AppendSnapshot of the same detector, shard count and
// options, returning an error (and leaving the shard empty and usable) for
// anything else — a snapshot of another version, truncated or corrupt
// bytes (use snap.Reader's Count for every length). State that is only a
// cache of the stream's recent past (open windows, pending timers) may be
// left out; what the detector learnt over days must not.
type Snapshotter interface {
	AppendSnapshot(w *snap.Writer)
	Restore(r *snap.Reader) error
}
