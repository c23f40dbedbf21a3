package console

import (
	"encoding/base64"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

func TestParseAlertFilter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		q     string
		err   string
		check func(AlertFilter) bool
	}{
		{q: "", check: func(f AlertFilter) bool {
			return cmp.Equal(f.Query(now), store.AlertQuery{})
		}},
		{q: "severity=high", check: func(f AlertFilter) bool {
			return cmp.Equal(f.Query(now), store.AlertQuery{MinSeverity: event.SeverityHigh})
		}},
		{q: "kind=principal", check: func(f AlertFilter) bool {
			return cmp.Equal(f.Query(now), store.AlertQuery{Kind: event.EntityPrincipal})
		}},
		{q: "detector=token_provenance&state=open", check: func(f AlertFilter) bool {
			return cmp.Equal(f.Query(now), store.AlertQuery{Detector: "token_provenance", State: event.AlertOpen})
		}},
		{q: "window=24h", check: func(f AlertFilter) bool { return f.Query(now).Since.Equal(now.Add(-24 * time.Hour)) }},
		{q: "from=2026-11-01&to=2026-11-02", check: func(f AlertFilter) bool {
			q := f.Query(now)
			return q.Since.Equal(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)) && q.Before.Equal(time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC))
		}},
		{q: "severity=urgent", err: "severity: unknown severity"},
		{q: "kind=planet", err: "kind: want principal"},
		{q: "window=2y", err: "window: want"},
		{q: "from=yesterday", err: "from: want YYYY-MM-DD"},
		{q: "from=2026-11-05&to=2026-11-01", err: "is not after from"},
		// Beyond Unix nanoseconds the store's comparison would wrap.
		{q: "from=9999-01-01", err: "from: time 9999-01-01T00:00:00Z is outside the supported range"},
		{q: "to=1600-01-01T00:00:00Z", err: "to: time 1600-01-01T00:00:00Z is outside the supported range"},
		{q: "to=2262-04-11", err: "to: time 2262-04-12T00:00:00Z is outside"}, // the day's end is past the range
		{q: "from=2262-04-11", check: func(f AlertFilter) bool { return f.From.Equal(time.Date(2262, 4, 11, 0, 0, 0, 0, time.UTC)) }},
		{q: "detector=" + strings.Repeat("x", 201), err: "at most 200"},
	} {
		v, _ := url.ParseQuery(c.q)
		f, err := ParseAlertFilter(v)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: err %v, want %q", c.q, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.q, err)
			continue
		}
		if c.check != nil && !c.check(f) {
			t.Errorf("%q: filter %+v", c.q, f)
		}
		// Values round-trips.
		f2, err := ParseAlertFilter(f.Values())
		if err != nil || f2 != f {
			t.Errorf("%q: round trip %+v → %+v (%v)", c.q, f, f2, err)
		}
	}
}

// FuzzAlertFilter: any query string parses or fails with an error, never
// panics, and what parses round-trips through Values.
func FuzzAlertFilter(f *testing.F) {
	for _, s := range []string{"", "severity=high&kind=key", "window=7d&from=2026-01-01", "to=2026-11-23T10:00:00Z", "severity=%ff", "from=2026-13-40"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		flt, err := ParseAlertFilter(v)
		if err != nil {
			return
		}
		again, err := ParseAlertFilter(flt.Values())
		if err != nil {
			t.Fatalf("%q parsed to %+v, whose Values %q do not parse: %v", s, flt, flt.Values().Encode(), err)
		}
		if again != flt {
			t.Fatalf("%q: %+v round-trips to %+v", s, flt, again)
		}
		_ = flt.Query(time.Now())
	})
}

// TestPageCursor: a page cursor round-trips through its token, and what
// is not one of its tokens is refused.
func TestPageCursor(t *testing.T) {
	at := time.Date(2026, 11, 23, 12, 0, 0, 123, time.UTC)
	for _, c := range []pageCursor{
		{At: store.AlertCursor{Time: at, ID: "al-1"}},
		{Newer: true, At: store.AlertCursor{Time: at, ID: "id.with.dots and spaces/é"}},
		{At: store.AlertCursor{Time: time.Unix(0, -5).UTC(), ID: "x"}},
	} {
		tok := c.String()
		if url.QueryEscape(tok) != tok {
			t.Errorf("%+v: token %q needs escaping", c, tok)
		}
		got, err := parsePageCursor(tok)
		if err != nil || got != c {
			t.Errorf("%+v → %q → %+v, %v", c, tok, got, err)
		}
	}
	if c, err := parsePageCursor(""); err != nil || c != (pageCursor{}) {
		t.Errorf(`"" → %+v, %v; want the first page`, c, err)
	}
	for _, bad := range []string{"x", "!!!", "bzEyMy5h=", "bzEy*My5h",
		base64.RawURLEncoding.EncodeToString([]byte("x123.a")), base64.RawURLEncoding.EncodeToString([]byte("o12a.a")),
		base64.RawURLEncoding.EncodeToString([]byte("o123.")), base64.RawURLEncoding.EncodeToString([]byte("o123")),
		strings.Repeat("A", 1000)} {
		if _, err := parsePageCursor(bad); err == nil || !strings.Contains(err.Error(), "first page") {
			t.Errorf("%q: err %v", bad, err)
		}
	}
}

// FuzzPageCursor: any token parses or fails, never panics, and what parses
// encodes back to a token that parses to the same cursor.
func FuzzPageCursor(f *testing.F) {
	for _, c := range []pageCursor{{At: store.AlertCursor{Time: time.Unix(0, 1), ID: "a"}}, {Newer: true, At: store.AlertCursor{Time: time.Unix(5, 0), ID: "b.c"}}} {
		f.Add(c.String())
	}
	f.Add("")
	f.Add("bi0xLng")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parsePageCursor(s)
		if err != nil || s == "" {
			return
		}
		again, err := parsePageCursor(c.String())
		if err != nil || again != c {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, c, c.String(), again, err)
		}
	})
}

// TestSafeNext: a post-login redirect stays on this site, however the
// value is written; every refused one becomes "/".
func TestSafeNext(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		// Kept: the console's own pages, as deny passes them (RequestURI).
		{"/", "/"},
		{"/alerts?x=1", "/alerts?x=1"},
		{"/alerts?severity=high&detector=token_provenance", "/alerts?severity=high&detector=token_provenance"},
		{"/entities/network/10.0.0.0%2F24", "/entities/network/10.0.0.0%2F24"},
		{"/entities/principal/DOMAIN%5Cuser", "/entities/principal/DOMAIN%5Cuser"},
		{"/entities/principal/50%25off", "/entities/principal/50%25off"},
		{"/scope?key=k-1#top", "/scope?key=k-1#top"},
		// Refused: not a path on this site.
		{"", "/"},
		{"alerts", "/"},
		{"https://evil.example", "/"},
		{"//evil.example", "/"},
		{"///evil.example", "/"},
		{"/\\evil.example", "/"},
		{"\\\\evil.example", "/"},
		{" /alerts", "/"},
		// Browsers drop tabs and newlines and read a backslash as "/".
		{"/\thost", "/"},
		{"/\t/host", "/"},
		{"/\n/host", "/"},
		{"/\r/host", "/"},
		{"/a\r\nSet-Cookie: x", "/"},
		{"/\x00/host", "/"},
		{"/\x7f/host", "/"},
		{"/a\\b", "/"},
		{"/ /host", "/"},
		// Percent-encoded forms of the same.
		{"/%09/host", "/"},
		{"/%0a/host", "/"},
		{"/%0D%0A/host", "/"},
		{"/%2F/host", "/"},
		{"/%2f/host", "/"},
		{"/%5chost", "/"},
		{"/%5C/host", "/"},
		{"/%252F/host", "/"},
		{"/%25252F/host", "/"},
		{"/%2525252F/host", "/"},
		{"/%00", "/"},
		{"/%zz", "/"},
		{"/alerts%0d%0aSet-Cookie:x", "/"},
	} {
		if got := safeNext(c.in); got != c.want {
			t.Errorf("safeNext(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSafeNext: whatever comes in, what comes out is "/" or a path that
// resolves to this site and that no browser quirk (dropped tabs and
// newlines, backslash as slash, a decoding) turns into another origin.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/", "/alerts?x=1", "/%09/host", "//h", "/\\h", "/%252F/h", "/a%5Cb"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://console.example/alerts")
	f.Fuzz(func(t *testing.T, s string) {
		got := safeNext(s)
		if got == "/" {
			return
		}
		if got != s {
			t.Fatalf("safeNext(%q) = %q: neither the input nor /", s, got)
		}
		if strings.ContainsAny(got, "\\ ") || strings.ContainsFunc(got, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("safeNext(%q) kept a backslash, space or control character", s)
		}
		for d := got; ; {
			if u, err := url.Parse(d); err == nil {
				if r := base.ResolveReference(u); r.Host != base.Host || r.Scheme != base.Scheme {
					t.Fatalf("safeNext(%q) kept %q, which resolves to %s", s, d, r)
				}
			}
			if strings.HasPrefix(d, "//") || strings.HasPrefix(d, "/\\") {
				t.Fatalf("safeNext(%q) kept %q, which decodes to %q", s, got, d)
			}
			u, err := url.PathUnescape(d)
			if err != nil || u == d {
				break
			}
			d = u
		}
	})
}
