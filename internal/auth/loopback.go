package auth

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// LoopbackOnly guards a server that runs without access control
// (--insecure-no-auth, on a loopback listener) against the other web sites
// its user's browser visits:
//
//   - Every request's Host must be "localhost", a loopback IP address
//     (127.0.0.1, [::1], …) with port (the port served on; a Host without
//     a port means 80, or 443 when tls). Otherwise 421: a page on
//     attacker.example whose name was rebound to 127.0.0.1 (DNS rebinding)
//     sends Host: attacker.example and is refused.
//   - A state-changing request (any method but GET, HEAD, OPTIONS) must
//     come from the same origin: an Origin header, when present, must be
//     exactly the scheme and Host the request was sent to ("null" is
//     refused); without Origin, a Sec-Fetch-Site header, when present,
//     must be "same-origin" or "none". A request with neither header
//     (curl, haechi simulate, scripts — not a browser posting across
//     sites, which always sends Origin) passes. Otherwise 403.
//
// Refusals are written with DenyJSON.
func LoopbackOnly(h http.Handler, port string, tls bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host, port, tls) {
			DenyJSON(w, r, http.StatusMisdirectedRequest, "misdirected request: with --insecure-no-auth only localhost, 127.0.0.1 or [::1] with port "+port+" are served (Host "+quoteHost(r.Host)+")")
			return
		}
		if !safeMethod(r.Method) {
			if msg := crossSite(r, tls); msg != "" {
				DenyJSON(w, r, http.StatusForbidden, msg)
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether a Host header names a loopback address (or
// localhost) with port.
func loopbackHost(host, port string, tls bool) bool {
	name, p, err := net.SplitHostPort(host)
	if err != nil {
		// No port (or a malformed Host): the scheme's default port.
		name, p = host, "80"
		if tls {
			p = "443"
		}
		if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
			name = name[1 : len(name)-1]
		}
	}
	if p != port {
		return false
	}
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(name)
	return err == nil && ip.Zone() == "" && ip.IsLoopback()
}

// crossSite returns why a state-changing request is refused as coming from
// another origin, or "".
func crossSite(r *http.Request, tls bool) string {
	if o := r.Header.Get("Origin"); o != "" {
		scheme := "http"
		if tls {
			scheme = "https"
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme != scheme || !strings.EqualFold(u.Host, r.Host) || u.Path != "" || u.User != nil {
			return "forbidden: request from another origin (" + quoteHost(o) + "); with --insecure-no-auth only this server's own pages may post"
		}
		return ""
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return "forbidden: the browser says this request came from another site (Sec-Fetch-Site: " + quoteHost(s) + ")"
	}
	return ""
}

// quoteHost bounds and quotes a header value for a message.
func quoteHost(s string) string {
	if len(s) > 100 {
		s = s[:100] + "…"
	}
	return strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s), "?")
}
