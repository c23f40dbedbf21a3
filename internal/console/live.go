package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
)

// live streams alert changes ("event: alert") as they happen and the
// pipeline's stats ("event: stats") every LiveInterval, as Server-Sent
// Events. The console's JavaScript (static/live.js) applies them to the
// page; without JavaScript the pages are complete, only not live.
//
// The stream lives no longer than the credential it was opened with
// (auth.Authenticator.Watch): when the token is revoked or the session
// logged out or expired, it ends with "event: end", data {"reason": why,
// "login": true}; when the credential cannot be checked (the store
// failed), with "login": false, and the browser reconnects.
func (c *Console) live(w http.ResponseWriter, r *http.Request) {
	ctx, stop := context.WithCancel(r.Context())
	defer stop()
	var ended <-chan error
	if c.opts.Auth != nil {
		cl, ok := auth.CallerFrom(ctx)
		if !ok {
			c.deny(w, r, http.StatusUnauthorized, auth.ErrNoCredentials.Error())
			return
		}
		ended = c.opts.Auth.Watch(ctx, cl)
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	ch, cancel := c.opts.Hub.Subscribe()
	defer cancel()
	// Clients reconnect after 3 s when the stream drops.
	if _, err := io.WriteString(w, "retry: 3000\n\n"); err != nil {
		return
	}
	if err := c.sendStats(w); err != nil || rc.Flush() != nil {
		return
	}
	tick := time.NewTicker(c.opts.LiveInterval)
	defer tick.Stop()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case err := <-ended:
			login := errors.Is(err, auth.ErrBadToken) || errors.Is(err, auth.ErrSession)
			if !login {
				c.opts.Logger.Warn("console: live stream: cannot re-check its credential", "err", err)
			}
			if sendEvent(w, "end", map[string]any{"reason": err.Error(), "login": login}) == nil {
				_ = rc.Flush()
			}
			return
		case <-c.done:
			return
		case la, ok := <-ch:
			if !ok {
				return
			}
			err = sendEvent(w, "alert", la)
		case <-tick.C:
			err = c.sendStats(w)
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return
		}
	}
}

func (c *Console) sendStats(w io.Writer) error {
	st := c.stats.read()
	return sendEvent(w, "stats", map[string]any{
		"event_rate": st.EventRate, "lag_seconds": st.LagSeconds, "processed": st.Processed,
		"queue_depth": st.QueueDepth, "known": st.Known,
	})
}

func sendEvent(w io.Writer, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, b)
	return err
}
