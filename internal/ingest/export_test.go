package ingest

import "time"

// EncodeRecord frames a spool record (the current version) as Append
// stores it, for the tests outside the package.
func EncodeRecord(accepted time.Time, scope, key string, body []byte) []byte {
	return encodeSpoolRecord(spoolRecord{Accepted: accepted, Scope: scope, Key: key, Hash: bodyHash("", body), Body: body})
}

// SpoolBytes returns the bytes held in the spool's segments.
func (in *Ingester) SpoolBytes() uint64 { return in.sp.Stats().Bytes }
