package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/store"
)

// endedError says why a credential stopped being valid; errors.Is matches
// its category (ErrBadToken for a bearer token, ErrSession for a session).
type endedError struct {
	msg string
	is  error
}

func (e *endedError) Error() string { return e.msg }
func (e *endedError) Unwrap() error { return e.is }

// Recheck reports whether the credential c was authenticated with (by
// Guard or Authenticate) is still valid now: the bearer token not revoked;
// the session not logged out, not expired and its token not revoked. It
// returns nil, an error matching ErrBadToken or ErrSession that says why
// the credential ended, or a store error (the store could not be asked).
// A Caller that did not come from this package's authentication has no
// credential to check and is refused (ErrNoCredentials).
func (a *Authenticator) Recheck(ctx context.Context, c Caller) error {
	if c.hash == "" {
		return ErrNoCredentials
	}
	if !c.Session {
		t, err := a.opts.Store.TokenByHash(ctx, c.hash)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return &endedError{fmt.Sprintf("token %s no longer exists", c.TokenID), ErrBadToken}
		case err != nil:
			return fmt.Errorf("recheck token %s: %w", c.TokenID, err)
		case !t.Revoked.IsZero():
			return &endedError{fmt.Sprintf("token %s was revoked", c.TokenID), ErrBadToken}
		}
		return nil
	}
	se, t, err := a.opts.Store.SessionByHash(ctx, c.hash)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &endedError{"the session was logged out or its token revoked", ErrSession}
	case err != nil:
		return fmt.Errorf("recheck session of %s: %w", c.TokenID, err)
	case !t.Revoked.IsZero():
		return &endedError{fmt.Sprintf("token %s, which opened the session, was revoked", c.TokenID), ErrSession}
	case !a.opts.Now().Before(se.Expires):
		return &endedError{"the session expired", ErrSession}
	}
	return nil
}

// Watch re-checks the credential c (see Recheck) at once, then every
// Options.RecheckInterval, at the session's expiry, and whenever a
// credential ends in this process (Logout, RevokeToken); the returned
// channel receives the first error and nothing else. Revocations made by
// another process against the same store (haechi tokens revoke) are seen
// by the next periodic re-check. Watch's goroutine ends with ctx.
func (a *Authenticator) Watch(ctx context.Context, c Caller) <-chan error {
	out := make(chan error, 1)
	go func() {
		timer := time.NewTimer(a.opts.RecheckInterval)
		defer timer.Stop()
		for {
			// Taken before the check: an end signalled while it runs
			// wakes the wait below.
			ended := a.endedSignal()
			if err := a.Recheck(ctx, c); err != nil {
				if ctx.Err() == nil {
					out <- err
				}
				return
			}
			next := a.opts.RecheckInterval
			if !c.expires.IsZero() {
				if d := c.expires.Sub(a.opts.Now()); d < next {
					next = max(d, 0)
				}
			}
			timer.Reset(next)
			select {
			case <-ctx.Done():
				return
			case <-ended:
			case <-timer.C:
			}
		}
	}()
	return out
}

// RevokeToken revokes a token and ends its sessions (store.Store's
// RevokeToken, audited there with by) and tells every open stream of this
// process to re-check at once. The store must implement TokenRevoker.
func (a *Authenticator) RevokeToken(ctx context.Context, id, by string) error {
	rv, ok := a.opts.Store.(TokenRevoker)
	if !ok {
		return errors.New("revoke token: the store cannot revoke tokens")
	}
	if err := rv.RevokeToken(ctx, id, by, a.opts.Now()); err != nil {
		return err
	}
	a.credentialsEnded(true)
	return nil
}

// TokenRevoker is a Store that can revoke tokens (store.Store is one).
type TokenRevoker interface {
	RevokeToken(ctx context.Context, id, by string, now time.Time) error
}

// endedSignal returns the channel the next credentialsEnded closes.
func (a *Authenticator) endedSignal() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ended
}

// credentialsEnded wakes every Watch and, when a token ended (not only a
// session, which is never cached), forgets the cached bearer tokens —
// their believed window and their stale grace alike.
func (a *Authenticator) credentialsEnded(tokenEnded bool) {
	if tokenEnded {
		a.forget()
	}
	a.mu.Lock()
	close(a.ended)
	a.ended = make(chan struct{})
	a.mu.Unlock()
}
