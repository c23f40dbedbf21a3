// Package spool is haechi's write-ahead spool: a disk-backed, segmented,
// append-only log of opaque records with checksums and group-committed fsync.
//
// serve appends every accepted request body to the spool and acknowledges
// the request only after Append has returned, i.e. after the records are
// fsynced. The pipeline consumes the spool through a Reader and stores the
// offset of the last record it has fully processed in the same database
// transaction as the state derived from it; that stored offset is the resume
// point after a restart. Together this gives haechi's promise: an event
// haechi acknowledged is processed exactly once, whatever happens to the
// process.
//
// # Offsets
//
// An offset is a record sequence number, not a byte position. The first
// record ever appended has offset 1, and each record gets the previous
// offset plus one, with no gaps, across segment rolls and restarts. Offset 0
// never names a record, so Committed() == 0 means "nothing processed yet" and
// the resume point is always Committed()+1.
//
// # Format
//
// The directory holds segment files named after the offset of their first
// record (00000000000000000001.seg), a LOCK file held with flock while a
// Spool is open, and a 16-byte checkpoint file. Each record is framed as a
// little-endian u32 payload length, a little-endian u32 CRC-32C (Castagnoli)
// over the length bytes and the payload, then the payload. Segments roll when
// the next record would take the active segment past Options.SegmentBytes.
//
// # Recovery
//
// Open scans only the last segment, verifying every frame. The first frame
// that is short or fails its checksum ends the log: the file is truncated
// there and a warning names the file, the byte offset and the bytes dropped.
// Earlier segments are trusted by name and size (their record count is the
// difference between consecutive names), so recovery time does not grow with
// the spool; their checksums are verified as they are read, and a bad frame
// there is reported by Reader.Next as a *CorruptError (errors.Is ErrCorrupt),
// never skipped. See docs/spool.md for the full guarantees.
package spool
