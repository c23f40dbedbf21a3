package console

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// live streams alert changes ("event: alert") as they happen and the
// pipeline's stats ("event: stats") every LiveInterval, as Server-Sent
// Events. The console's JavaScript (static/live.js) applies them to the
// page; without JavaScript the pages are complete, only not live.
func (c *Console) live(w http.ResponseWriter, r *http.Request) {
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
		case <-r.Context().Done():
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
