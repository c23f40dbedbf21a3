package console

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// AlertFilter is the alerts page's filter, parsed from its query string:
// severity (the minimum: low, medium, high, critical), state, detector,
// kind (entity kind), window (1h, 24h, 7d, 30d or all; default all), or
// from/to (YYYY-MM-DD or RFC 3339; to is inclusive of its day).
type AlertFilter struct {
	Severity event.Severity
	State    string
	Detector string
	Kind     event.EntityKind
	Window   string
	From, To time.Time
}

var windows = map[string]time.Duration{"1h": time.Hour, "24h": 24 * time.Hour, "7d": 7 * 24 * time.Hour, "30d": 30 * 24 * time.Hour}

// maxFilterValue bounds a filter value: they name detectors and states.
const maxFilterValue = 200

// ParseAlertFilter reads a filter; every error names the parameter and
// what it accepts.
func ParseAlertFilter(v url.Values) (AlertFilter, error) {
	var f AlertFilter
	for _, name := range []string{"severity", "state", "detector", "kind", "window", "from", "to"} {
		if s := v.Get(name); len(s) > maxFilterValue {
			return f, fmt.Errorf("%s: at most %d characters", name, maxFilterValue)
		}
	}
	if s := v.Get("severity"); s != "" {
		sev, err := event.ParseSeverity(s)
		if err != nil {
			return f, fmt.Errorf("severity: %w", err)
		}
		f.Severity = sev
	}
	f.State = strings.TrimSpace(v.Get("state"))
	f.Detector = strings.TrimSpace(v.Get("detector"))
	switch k := event.EntityKind(v.Get("kind")); k {
	case "", event.EntityPrincipal, event.EntitySource, event.EntityToken, event.EntitySigningKey, event.EntityRecord:
		f.Kind = k
	default:
		return f, fmt.Errorf("kind: want principal, source, token, key or record, got %q", string(k))
	}
	switch w := v.Get("window"); w {
	case "", "all":
	default:
		if _, ok := windows[w]; !ok {
			return f, fmt.Errorf("window: want 1h, 24h, 7d, 30d or all, got %q", w)
		}
		f.Window = w
	}
	var err error
	if f.From, err = parseTime(v.Get("from"), false); err != nil {
		return f, fmt.Errorf("from: %w", err)
	}
	if f.To, err = parseTime(v.Get("to"), true); err != nil {
		return f, fmt.Errorf("to: %w", err)
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.To.After(f.From) {
		return f, fmt.Errorf("to (%s) is not after from (%s)", f.To.Format(time.RFC3339), f.From.Format(time.RFC3339))
	}
	return f, nil
}

// parseTime reads YYYY-MM-DD (a day: its start, or with endOfDay the
// start of the next) or RFC 3339.
func parseTime(s string, endOfDay bool) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err == nil {
		t = t.UTC()
	} else if t, err = time.Parse("2006-01-02", s); err != nil {
		return time.Time{}, fmt.Errorf("want YYYY-MM-DD or an RFC 3339 time, got %q", s)
	} else if endOfDay {
		t = t.AddDate(0, 0, 1)
	}
	// Alerts are queried by Unix nanoseconds, which a time outside
	// their range would wrap.
	if err := event.CheckTime(t); err != nil {
		return time.Time{}, err
	}
	return t, nil
}

// Query is the store query that applies the filter, with now for
// relative windows.
func (f AlertFilter) Query(now time.Time) store.AlertQuery {
	q := store.AlertQuery{Since: f.From, Before: f.To, MinSeverity: f.Severity, State: event.AlertState(f.State),
		Detector: f.Detector, Kind: f.Kind}
	if d, ok := windows[f.Window]; ok {
		if since := now.Add(-d); since.After(q.Since) {
			q.Since = since
		}
	}
	return q
}

// pageCursor is where a page of the alerts list starts: after At (older
// alerts; the next page) or, with Newer, before it (the previous page).
// In links it is an opaque token (cursor=…).
type pageCursor struct {
	Newer bool
	At    store.AlertCursor
}

// String encodes the cursor as a URL-safe token.
func (c pageCursor) String() string {
	dir := "o"
	if c.Newer {
		dir = "n"
	}
	return base64.RawURLEncoding.EncodeToString([]byte(dir + strconv.FormatInt(c.At.Time.UnixNano(), 10) + "." + c.At.ID))
}

// parsePageCursor reads a token of String; "" is the first page (the
// zero cursor).
func parsePageCursor(s string) (pageCursor, error) {
	var c pageCursor
	if s == "" {
		return c, nil
	}
	bad := errors.New("cursor: not a page link of this list; start again from the first page")
	if len(s) > 4*maxFilterValue {
		return c, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 2 || (b[0] != 'o' && b[0] != 'n') {
		return c, bad
	}
	c.Newer = b[0] == 'n'
	nanos, id, ok := strings.Cut(string(b[1:]), ".")
	n, err := strconv.ParseInt(nanos, 10, 64)
	if !ok || err != nil || id == "" {
		return c, bad
	}
	c.At = store.AlertCursor{Time: time.Unix(0, n).UTC(), ID: id}
	return c, nil
}

// Values renders the filter back as a query string (for links).
func (f AlertFilter) Values() url.Values {
	v := url.Values{}
	if f.Severity != 0 {
		v.Set("severity", f.Severity.String())
	}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("state", f.State)
	set("detector", f.Detector)
	set("kind", string(f.Kind))
	set("window", f.Window)
	if !f.From.IsZero() {
		v.Set("from", f.From.Format(time.RFC3339))
	}
	if !f.To.IsZero() {
		v.Set("to", f.To.Format(time.RFC3339))
	}
	return v
}
