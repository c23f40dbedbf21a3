package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/haechi-sec/haechi/internal/detect/tokenuse"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
)

// refusal is one request the inline check refused.
type refusal struct {
	q mint.Query
	v mint.Verdict
}

// refusals turns the inline check's refusals into events and audit
// entries, off the check's path: Record never blocks (a full queue drops
// and counts), Run flushes every refusalFlush, sooner when refusalBatch
// refusals wait.
//
// Each refusal becomes a gateway.access event with event.outcome failure
// and event.action "verify.<verdict>", submitted to the pipeline (so rules
// and the alert path see the attempt; the ledger records no exposure for a
// failed access), and each flush appends one folded audit entry
// ("verify_refused": how many, by verdict and by key, and the first token
// ids), so a flood of forged tokens cannot flood the audit log.
type refusals struct {
	// mu guards pending, the refusals recorded and not yet taken by Run
	// (at most refusalQueue). Record appends under it and wakes Run (kick)
	// only when a batch is full, so a flood of refusals does not wake a
	// goroutine per refusal.
	mu      sync.Mutex
	pending []refusal
	kick    chan struct{} // capacity 1: a batch is waiting
	dropped atomic.Uint64
	submit  func(ctx context.Context, evs []event.Event) error
	audit   func(ctx context.Context, t time.Time, kind, actionID string, detail any) error
	log     *slog.Logger
}

const (
	refusalQueue = 8192
	refusalFlush = time.Second
	refusalBatch = 1024
	// auditTokens is how many token ids one folded audit entry names.
	auditTokens = 20
	// auditKeys is how many key ids one folded audit entry counts by
	// name; the others are counted under auditOtherKeys.
	auditKeys      = 20
	auditOtherKeys = "(other keys)"
	// maxRefusedID and maxRefusedUA bound a refused token's id and key id,
	// and its user agent, as events and audit entries carry them (clampID).
	maxRefusedID = 256
	maxRefusedUA = 512
)

func newRefusals(submit func(context.Context, []event.Event) error,
	audit func(context.Context, time.Time, string, string, any) error, log *slog.Logger) *refusals {
	return &refusals{kick: make(chan struct{}, 1), submit: submit, audit: audit, log: log}
}

// Record queues a refusal; it never blocks. The token's id, key id, user
// and user agent come from whoever sent the request through the gateway, so
// they are clamped (clampID) before they are kept.
func (r *refusals) Record(q mint.Query, a mint.Answer) {
	q.TokenID, q.KeyID, q.UserAgent = clampID(q.TokenID, maxRefusedID), clampID(q.KeyID, maxRefusedID), clampID(q.UserAgent, maxRefusedUA)
	q.User = clampID(q.User, maxRefusedID)
	r.mu.Lock()
	n := len(r.pending)
	if n < refusalQueue {
		r.pending = append(r.pending, refusal{q: q, v: a.Verdict})
	}
	r.mu.Unlock()
	switch {
	case n >= refusalQueue:
		r.dropped.Add(1)
	case n+1 == refusalBatch:
		select {
		case r.kick <- struct{}{}:
		default:
		}
	}
}

// take returns the refusals recorded so far, giving buf (emptied) back
// to Record for the next ones.
func (r *refusals) take(buf []refusal) []refusal {
	r.mu.Lock()
	out := r.pending
	r.pending = buf[:0]
	r.mu.Unlock()
	return out
}

// Run flushes recorded refusals every refusalFlush, or as soon as
// refusalBatch of them wait, until ctx ends; then it flushes what is left.
// A flush takes at most refusalBatch refusals (one folded audit entry).
func (r *refusals) Run(ctx context.Context) {
	t := time.NewTicker(refusalFlush)
	defer t.Stop()
	var spare []refusal
	flushAll := func() {
		buf := r.take(spare)
		for b := buf; len(b) > 0; {
			n := min(len(b), refusalBatch)
			r.flush(context.WithoutCancel(ctx), b[:n])
			b = b[n:]
		}
		clear(buf) // the queries' strings
		spare = buf
	}
	for {
		select {
		case <-r.kick:
			flushAll()
		case <-t.C:
			flushAll()
		case <-ctx.Done():
			flushAll()
			return
		}
	}
}

// refusalLine is a refusal's event as a line of the event contract
// (docs/events.md), so that it can be stored in the spool: decoded, it is
// refusalEvent's event.
type refusalLine struct {
	Timestamp time.Time `json:"@timestamp"`
	Event     struct {
		Dataset string `json:"dataset"`
		Action  string `json:"action"`
		Outcome string `json:"outcome"`
	} `json:"event"`
	HTTP struct {
		Response struct {
			StatusCode int `json:"status_code"`
		} `json:"response"`
	} `json:"http"`
	User *struct {
		ID string `json:"id"`
	} `json:"user,omitempty"`
	Token struct {
		ID       string     `json:"id"`
		KeyID    string     `json:"key_id,omitempty"`
		IssuedAt *time.Time `json:"issued_at,omitempty"`
	} `json:"token"`
	Source *refusalSource `json:"source,omitempty"`
	UA     *struct {
		Original string `json:"original"`
	} `json:"user_agent,omitempty"`
}

type refusalSource struct {
	IP  string `json:"ip,omitempty"`
	Geo *struct {
		Country string `json:"country_iso_code"`
	} `json:"geo,omitempty"`
}

// refusalLines renders refusal events (refusalEvent's) as contract NDJSON.
func refusalLines(evs []event.Event) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for i := range evs {
		ev := &evs[i]
		var ln refusalLine
		ln.Timestamp = ev.Time.UTC()
		ln.Event.Dataset, ln.Event.Action, ln.Event.Outcome = ev.Dataset, ev.Action, ev.Outcome.String()
		ln.HTTP.Response.StatusCode = ev.HTTP.StatusCode
		ln.Token.ID, ln.Token.KeyID = ev.Token.ID, ev.Token.KeyID
		if ev.User.ID != "" {
			ln.User = &struct {
				ID string `json:"id"`
			}{ev.User.ID}
		}
		if !ev.Token.IssuedAt.IsZero() {
			t := ev.Token.IssuedAt.UTC()
			ln.Token.IssuedAt = &t
		}
		if ev.Source.IP.IsValid() || ev.Source.Country != "" {
			ln.Source = &refusalSource{}
			if ev.Source.IP.IsValid() {
				ln.Source.IP = ev.Source.IP.String()
			}
			if ev.Source.Country != "" {
				ln.Source.Geo = &struct {
					Country string `json:"country_iso_code"`
				}{ev.Source.Country}
			}
		}
		if ev.UserAgent != "" {
			ln.UA = &struct {
				Original string `json:"original"`
			}{ev.UserAgent}
		}
		if err := enc.Encode(&ln); err != nil {
			return nil, fmt.Errorf("refusal event: %w", err)
		}
	}
	return b.Bytes(), nil
}

// refusalEvent is the event of one refusal.
func refusalEvent(x refusal) event.Event {
	ev := event.Event{Time: x.q.Now, Dataset: event.DatasetGateway, Action: tokenuse.RefusedPrefix + string(x.v), Outcome: event.OutcomeFailure,
		User:      event.User{ID: x.q.User},
		Token:     event.Token{ID: x.q.TokenID, KeyID: x.q.KeyID, IssuedAt: x.q.IssuedAt},
		UserAgent: x.q.UserAgent}
	ev.HTTP.StatusCode = 403
	ev.Source.Country = x.q.Country
	if ip, err := netip.ParseAddr(x.q.Source); err == nil {
		ev.Source.IP = ip
	}
	return ev
}

// clampID returns s when it is at most max bytes, else a valid UTF-8
// prefix of it and a hash of the whole, within max bytes: ids that differ
// stay apart (but for a 64-bit hash collision), and no real token id, key
// id or user agent is that long.
func clampID(s string, max int) string {
	if len(s) <= max {
		return s
	}
	sum := fmt.Sprintf("…%016x", tokenuse.Hash(s))
	return strings.ToValidUTF8(s[:max-len(sum)], "") + sum
}

func (r *refusals) flush(ctx context.Context, buf []refusal) {
	evs := make([]event.Event, len(buf))
	byVerdict, byKey := map[string]int{}, map[string]int{}
	var tokens []string
	for i, x := range buf {
		evs[i] = refusalEvent(x)
		byVerdict[string(x.v)]++
		if _, ok := byKey[x.q.KeyID]; ok || len(byKey) < auditKeys {
			byKey[x.q.KeyID]++
		} else {
			byKey[auditOtherKeys]++
		}
		if len(tokens) < auditTokens {
			tokens = append(tokens, x.q.TokenID)
		}
	}
	if err := r.submit(ctx, evs); err != nil {
		r.log.Error("inline check: refused requests not submitted to the pipeline", "refusals", len(evs), "err", err)
	}
	detail := map[string]any{"refused": len(buf), "by_verdict": byVerdict, "by_key": byKey, "tokens": tokens}
	if d := r.dropped.Swap(0); d > 0 {
		detail["dropped"] = d
		r.log.Warn("inline check: refusals dropped, the queue was full", "dropped", d)
	}
	first, last := buf[0].q.Now, buf[0].q.Now
	for _, x := range buf {
		if x.q.Now.Before(first) {
			first = x.q.Now
		}
		if x.q.Now.After(last) {
			last = x.q.Now
		}
	}
	detail["from"], detail["to"] = first, last
	if err := r.audit(ctx, last, "verify_refused", "", detail); err != nil {
		r.log.Error("inline check: refusals not audited", "err", err)
	}
}
