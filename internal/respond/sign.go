package respond

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook headers.
const (
	HeaderTimestamp   = "X-Haechi-Timestamp" // unix seconds
	HeaderSignature   = "X-Haechi-Signature" // v1=<hex hmac-sha256(secret, timestamp + "." + body)>
	HeaderIdempotency = "Idempotency-Key"    // the action id
	HeaderActionKind  = "X-Haechi-Action"    // the action kind
)

// Sign returns the X-Haechi-Signature value for body sent at timestamp.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a webhook as a receiver should: header (the
// X-Haechi-Signature value, possibly several comma-separated v1= entries)
// must carry the HMAC of timestamp + "." + body, and timestamp (the
// X-Haechi-Timestamp value, unix seconds) must lie within tolerance of now
// so a captured request cannot be replayed later. tolerance ≤ 0 → 5 minutes.
func VerifySignature(secret, timestamp, body, header string, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = 5 * time.Minute
	}
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("invalid timestamp %q", timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("timestamp %s is %s from now, beyond the tolerance of %s", timestamp, d.Round(time.Second), tolerance)
	}
	want := Sign([]byte(secret), timestamp, []byte(body))
	for _, part := range strings.Split(header, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(part)), []byte(want)) {
			return nil
		}
	}
	return errors.New("signature mismatch")
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}
