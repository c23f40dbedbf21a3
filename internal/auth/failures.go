package auth

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// ErrThrottled is what a *ThrottleError matches: the client address has
// had too many refused logins in the current window.
var ErrThrottled = errors.New("too many refused logins from this address")

// ThrottleError refuses a login without looking at it; RetryAfter is when
// the address's window ends.
type ThrottleError struct {
	RetryAfter time.Duration
}

func (e *ThrottleError) Error() string {
	return fmt.Sprintf("%v; try again in %s", ErrThrottled, e.RetryAfter.Round(time.Second))
}

func (e *ThrottleError) Unwrap() error { return ErrThrottled }

// failWindow is one client address's refused logins in one window. The
// first refusal is audited when it happens; the rest are counted and
// audited as one entry when the window ends.
type failWindow struct {
	start, end  time.Time // by Options.Now
	n           int       // refusals, the first included (throttled ones too)
	throttled   int       // of n, refused unread because the address was over the limit
	first, last time.Time // of the refusals after the first
	timer       *time.Timer
}

// clientKey is the address refused logins are counted by: the IP of
// remoteAddr ("host:port"), an IPv6 address's /64 (one host usually holds
// a whole /64), or remoteAddr itself when it does not parse.
func clientKey(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return remoteAddr
	}
	ip := ap.Addr().Unmap()
	if ip.Is6() {
		p, _ := ip.WithZone("").Prefix(64)
		return p.String()
	}
	return ip.String()
}

// throttled counts an attempt from client and returns a *ThrottleError
// when the client's window already holds MaxFailures refusals.
func (a *Authenticator) throttled(client string, now time.Time) error {
	a.failMu.Lock()
	defer a.failMu.Unlock()
	w := a.failures[client]
	if w == nil || w.n < a.opts.MaxFailures {
		return nil
	}
	w.n++
	w.throttled++
	if w.first.IsZero() {
		w.first = now
	}
	w.last = now
	return &ThrottleError{RetryAfter: max(w.end.Sub(now), time.Second)}
}

// loginFailed records a refused login from client: the first of a window
// is audited now (detail), later ones are folded into the window's
// summary entry.
func (a *Authenticator) loginFailed(ctx context.Context, client string, now time.Time, detail map[string]any) {
	a.failMu.Lock()
	if w := a.failures[client]; w != nil {
		w.n++
		if w.first.IsZero() {
			w.first = now
		}
		w.last = now
		a.failMu.Unlock()
		return
	}
	var evicted *failWindow
	var evictedKey string
	if len(a.failures) >= a.opts.MaxFailureAddrs {
		for k, w := range a.failures {
			if evicted == nil || w.start.Before(evicted.start) {
				evicted, evictedKey = w, k
			}
		}
		evicted.timer.Stop()
		delete(a.failures, evictedKey)
	}
	w := &failWindow{start: now, end: now.Add(a.opts.FailureWindow), n: 1}
	w.timer = time.AfterFunc(a.opts.FailureWindow, func() { a.closeWindow(client, w) })
	a.failures[client] = w
	a.failMu.Unlock()

	if evicted != nil {
		a.auditSummary(evictedKey, evicted)
	}
	if err := a.opts.Store.AppendAudit(context.WithoutCancel(ctx), now, "login_refused", "", detail); err != nil {
		a.opts.Logger.Error("auth: audit refused login", "err", err)
	}
}

// closeWindow ends client's window w (if it is still the current one) and
// audits its summary.
func (a *Authenticator) closeWindow(client string, w *failWindow) {
	a.failMu.Lock()
	if a.failures[client] != w {
		a.failMu.Unlock()
		return
	}
	delete(a.failures, client)
	a.failMu.Unlock()
	a.auditSummary(client, w)
}

// auditSummary writes one login_refused entry for the refusals of w after
// its first (none when there were none).
func (a *Authenticator) auditSummary(client string, w *failWindow) {
	if w.n <= 1 {
		return
	}
	detail := map[string]any{"client": client, "count": w.n - 1, "throttled": w.throttled,
		"first": w.first.UTC(), "last": w.last.UTC(), "window_start": w.start.UTC(), "summary": true}
	if err := a.opts.Store.AppendAudit(context.Background(), a.opts.Now(), "login_refused", "", detail); err != nil {
		a.opts.Logger.Error("auth: audit refused logins", "client", client, "err", err)
	}
}

// Close writes the summaries of the open refused-login windows; call it
// before the store closes. Logins after Close still work; their windows
// are summarised when they end.
func (a *Authenticator) Close() {
	a.failMu.Lock()
	open := a.failures
	a.failures = map[string]*failWindow{}
	a.failMu.Unlock()
	for k, w := range open {
		w.timer.Stop()
		a.auditSummary(k, w)
	}
}
