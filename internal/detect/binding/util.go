package binding

import (
	"fmt"
	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
	"math"
	"strings"
	"time"
)

// epoch is the origin of the compact uint32 second counters. Times before
// it clamp to 1 (0 means "none") and times after 2136 clamp to
// math.MaxUint32.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

// toSec converts t to seconds since epoch, clamped to [1, MaxUint32].
func toSec(t time.Time) uint32 {
	s := t.Unix() - epoch
	switch {
	case s < 1:
		return 1
	case s > math.MaxUint32:
		return math.MaxUint32
	}
	return uint32(s)
}

// fromSec is the inverse of toSec (to the second).
func fromSec(s uint32) time.Time { return time.Unix(int64(s)+epoch, 0).UTC() }

// hashID is tokenuse.Hash, the token detector's hash of the same ids.
func hashID(id string) uint64 { return tokenuse.Hash(id) }

// orgHash is FNV-1a 32 over the lower-cased, trimmed organisation name;
// 0 for none (a name hashing to 0 becomes 1).
func orgHash(org string) uint32 {
	org = strings.TrimSpace(org)
	if org == "" {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(org); i++ {
		b := org[i]
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		h = (h ^ uint32(b)) * 16777619
	}
	if h == 0 {
		h = 1
	}
	return h
}

// PackCountry packs an ISO 3166-1 alpha-2 code into 1..676; anything else
// is 0, "no country".
func PackCountry(s string) uint16 {
	if len(s) != 2 {
		return 0
	}
	a, b := s[0]&^0x20, s[1]&^0x20
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return 0
	}
	return uint16(a-'A')*26 + uint16(b-'A') + 1
}

// UnpackCountry is the inverse of PackCountry; "" for 0.
func UnpackCountry(v uint16) string {
	if v == 0 || v > 26*26 {
		return ""
	}
	v--
	return string([]byte{'A' + byte(v/26), 'A' + byte(v%26)})
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// human renders a duration coarsely: "45s", "2m 10s", "3h".
func human(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d >= time.Minute:
		if s := (d % time.Minute) / time.Second; s != 0 {
			return fmt.Sprintf("%dm %ds", d/time.Minute, s)
		}
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}
