package respond

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// MaxRedirects is how many redirects one webhook delivery follows. Only
// redirects to the receiver's own origin (scheme, host and port) that keep
// the request's method — and with it the signed body — are followed.
const MaxRedirects = 3

// RedirectError is why a webhook delivery refused a redirect: the
// receiver's answer pointed at another origin, would have turned the
// request into another method (a POST into a GET without the signed body),
// or redirected more than MaxRedirects times. The delivery fails; no
// request is sent to the redirect's target.
type RedirectError struct {
	From, To string // origins (scheme://host:port), never paths or queries
	Reason   string
}

func (e *RedirectError) Error() string {
	return fmt.Sprintf("webhook redirect from %s to %s refused: %s", e.From, e.To, e.Reason)
}

// hideURL returns err with the URL a *url.Error carries (every failure of
// an HTTP client's request does: Post "URL": …) cut to its origin,
// scheme://host:port, followed by "/…" when it had a path or query. A
// receiver's path or query may be its credential (Slack, Teams and Discord
// webhook URLs are; a password in the URL is one too), and delivery errors
// are stored in the outbox, shown by `haechi actions list`, the API and the
// console, and logged; the receiver or sink is named beside them anyway.
func hideURL(err error) error {
	var ue *url.Error
	if !errors.As(err, &ue) {
		return err
	}
	u, perr := url.Parse(ue.URL)
	switch {
	case perr != nil || u.Host == "":
		ue.URL = "(the configured URL)"
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		ue.URL = origin(u) + "/…"
	default:
		ue.URL = origin(u)
	}
	return err
}

// DestinationError is why a webhook delivery refused to connect to an
// address: it is not a public unicast address (Range names which kind) and
// the receiver does not allow private destinations.
type DestinationError struct {
	Addr  netip.Addr
	Range string
}

func (e *DestinationError) Error() string {
	return fmt.Sprintf("webhook destination %s refused: %s address", e.Addr, e.Range)
}

// nonPublic names the kind of address ip is when it is not a public
// unicast address, and returns "" for a public one. IPv4-mapped IPv6
// addresses are judged as the IPv4 address they carry.
func nonPublic(ip netip.Addr) string {
	ip = ip.Unmap()
	if ip.Is6() {
		// Addresses that a gateway translates to an IPv4 address carried
		// inside them are judged by that address: NAT64's well-known
		// prefix (RFC 6052, the last 32 bits) and 6to4 (RFC 3056, bits
		// 16–47). NAT64's local-use prefix (RFC 8215) places the address
		// by the network's own prefix length, so it is refused whole.
		b := ip.As16()
		switch {
		case nat64.Contains(ip):
			if k := nonPublic(netip.AddrFrom4([4]byte(b[12:16]))); k != "" {
				return k + " (through NAT64)"
			}
		case sixToFour.Contains(ip):
			if k := nonPublic(netip.AddrFrom4([4]byte(b[2:6]))); k != "" {
				return k + " (through 6to4)"
			}
		case nat64Local.Contains(ip):
			return "NAT64 local-use"
		}
	}
	switch {
	case !ip.IsValid():
		return "invalid"
	case ip.IsUnspecified(), ip.Is4() && ip.As4()[0] == 0:
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast():
		return "link-local"
	case ip.IsMulticast(), ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return "multicast"
	case sharedSpace.Contains(ip):
		return "shared (carrier-grade NAT)"
	case ip.Is4() && ip.As4()[0] >= 240:
		return "reserved"
	}
	return ""
}

// sharedSpace is RFC 6598's carrier-grade NAT range, 100.64.0.0/10.
var sharedSpace = netip.MustParsePrefix("100.64.0.0/10")

// Prefixes of IPv6 addresses that carry an IPv4 address a gateway
// translates them to.
var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
)

// literalNonPublic reports the kind of a receiver URL's host when it is a
// literal non-public address or the name localhost (Validate refuses those
// up front, so a misconfiguration shows at start rather than as failing
// deliveries).
func literalNonPublic(rawURL string) (string, bool) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", false
	}
	h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return "loopback", true
	}
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return "", false
	}
	r := nonPublic(ip)
	return r, r != ""
}

// origin is a URL's scheme://host:port with the scheme's default port made
// explicit, so http://a and http://a:80 are one origin.
func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		default:
			port = "80"
		}
	}
	return strings.ToLower(u.Scheme) + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port)
}

// checkRedirect is the webhook client's http.Client.CheckRedirect. The
// request carries the receiver's secret headers and the signed body, so it
// may only go back to the origin it was configured for, unchanged in
// method, at most MaxRedirects times.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0]
	e := &RedirectError{From: origin(first.URL), To: origin(req.URL)}
	switch {
	case e.To != e.From:
		e.Reason = "another origin than the receiver's (only same scheme, host and port are followed)"
	case req.Method != first.Method:
		e.Reason = fmt.Sprintf("it would turn %s into %s and drop the signed body (only 307 and 308 keep them)", first.Method, req.Method)
	case len(via) > MaxRedirects:
		e.Reason = fmt.Sprintf("more than %d redirects", MaxRedirects)
	default:
		return nil
	}
	return e
}

// dialProxyKey carries, in a delivery's context, the host:port of the
// proxy the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) names for the
// delivery, if any: the one address the guarded dialer does not check.
type dialProxyKey struct{}

// withDialProxy returns req's context carrying the address of the proxy
// http.ProxyFromEnvironment picks for req (the webhook transport's Proxy).
func withDialProxy(req *http.Request) context.Context {
	ctx := req.Context()
	u, err := http.ProxyFromEnvironment(req)
	if err != nil || u == nil {
		return ctx
	}
	port := u.Port()
	if port == "" {
		switch u.Scheme {
		case "https":
			port = "443"
		case "socks5", "socks5h":
			port = "1080"
		default:
			port = "80"
		}
	}
	return context.WithValue(ctx, dialProxyKey{}, net.JoinHostPort(u.Hostname(), port))
}

// guardedDialContext dials like http.DefaultTransport but refuses, after
// name resolution and for every address tried, a connection to a
// non-public address (so a name that resolves, or is rebound, to an
// internal address is refused too). Only a dial to the proxy the
// environment names for the delivery (withDialProxy) — the operator's
// choice — is not checked; through a proxy the proxy resolves the
// receiver's name, and only Validate's check of a literal address applies.
func guardedDialContext() func(ctx context.Context, network, addr string) (net.Conn, error) {
	plain := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	guarded := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("webhook destination %q: %w", address, err)
			}
			if r := nonPublic(ap.Addr()); r != "" {
				return &DestinationError{Addr: ap.Addr().Unmap(), Range: r}
			}
			return nil
		}}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if proxy, ok := ctx.Value(dialProxyKey{}).(string); ok && strings.EqualFold(proxy, addr) {
			return plain.DialContext(ctx, network, addr)
		}
		return guarded.DialContext(ctx, network, addr)
	}
}

// webhookClient returns the client deliveries use: http.DefaultTransport's
// settings (the environment's proxy included), checkRedirect, and unless
// allowPrivate the guarded dialer.
func webhookClient(allowPrivate bool) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if !allowPrivate {
		tr.DialContext = guardedDialContext()
	}
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}
