// Package sink delivers alert documents to the systems security teams
// already run: Elasticsearch or OpenSearch (the _bulk API), Splunk (the
// HTTP Event Collector) and syslog receivers (RFC 5424 over TCP with
// octet-counting framing, RFC 6587, optionally TLS, or over UDP).
//
// A sink only moves bytes. It never retries, never waits and keeps no
// state between calls: the caller (respond's dispatcher) holds each
// document in its outbox, calls Send with a batch, and retries with
// backoff what Send reports failed, so a document is delivered at least
// once across retries and restarts. Send reports one result per item, so
// a partial failure retries only the items that failed.
package sink

import (
	"errors"
	"fmt"
	"time"
)

// Item is one document to deliver.
type Item struct {
	// ID is the document's idempotency key (the outbox action id): the
	// Elasticsearch _id, so a retried document is not indexed twice.
	ID string
	// Time is the event time the document reports (the alert's).
	Time time.Time
	// Severity is haechi's: 1 low, 2 medium, 3 high, 4 critical (syslog
	// maps it to the message's severity).
	Severity int
	// Doc is one JSON document without a trailing newline.
	Doc []byte
}

// Error is why one item was not delivered. Permanent marks an item the
// receiver refused for what it is (a document its mapping rejects): trying
// it again cannot succeed, so the caller gives up on it at once.
type Error struct {
	Status    int // the receiver's status for the item (HTTP or per-item), 0 when none
	Reason    string
	Permanent bool
}

func (e *Error) Error() string {
	if e.Status != 0 {
		return fmt.Sprintf("%d: %s", e.Status, e.Reason)
	}
	return e.Reason
}

// IsPermanent reports whether err (from Send) says the item can never be
// delivered.
func IsPermanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Permanent
}

// each returns n copies of err (a failure of the whole request).
func each(n int, err error) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
