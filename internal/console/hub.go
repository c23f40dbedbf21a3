package console

import (
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/event"
)

// LiveAlert is what the live stream says about an alert change.
type LiveAlert struct {
	Change   string    `json:"change"` // raised, updated, closed, withdrawn
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Severity string    `json:"severity"`
	Title    string    `json:"title"`
	Entity   string    `json:"entity"`
	Detector string    `json:"detector"`
	Score    float64   `json:"score"`
	Findings int       `json:"findings"`
	URL      string    `json:"url"`
}

// Hub fans alert changes out to the console's live streams. It is an
// alert.Sink: Alert never blocks the pipeline — a subscriber that does not
// keep up loses changes (its page still shows them on the next load) and
// is told so by a "lagged" mark on the next one it gets.
//
// It also remembers, per detector, the event time of the latest finding
// it has seen in an alert: the detection-health panel's live part.
type Hub struct {
	mu      sync.Mutex
	subs    map[*subscriber]struct{}
	lastFnd map[string]time.Time
	drill   func(event.Alert) bool // SetDrill
}

// SetDrill tells the hub which alerts are drills' (serve's continuous
// drills): they are streamed like any other, but their findings are not
// the detection-health panel's latest findings.
func (h *Hub) SetDrill(isDrill func(event.Alert) bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.drill = isDrill
}

type subscriber struct {
	ch     chan LiveAlert
	lagged bool
}

// subscriberBuffer is how many changes a slow page may fall behind.
const subscriberBuffer = 64

// NewHub returns an empty hub.
func NewHub() *Hub {
	return &Hub{subs: map[*subscriber]struct{}{}, lastFnd: map[string]time.Time{}}
}

var _ alert.Sink = (*Hub)(nil)

// Alert implements alert.Sink.
func (h *Hub) Alert(c alert.Change, a event.Alert) {
	la := LiveAlert{Change: c.String(), ID: a.ID, Time: a.Time, Severity: a.Severity.String(), Title: a.Title,
		Entity: a.Entity.String(), Detector: a.Detector, Score: a.Score, Findings: a.FindingCount, URL: alertURL(a.ID)}
	h.mu.Lock()
	defer h.mu.Unlock()
	findings := a.Findings
	if h.drill != nil && h.drill(a) {
		findings = nil
	}
	for _, f := range findings {
		if f.Time.After(h.lastFnd[f.Detector]) {
			h.lastFnd[f.Detector] = f.Time
		}
	}
	for s := range h.subs {
		select {
		case s.ch <- la:
		default:
			s.lagged = true
		}
	}
}

// Subscribe returns a channel of alert changes and a function that ends
// the subscription (and closes the channel).
func (h *Hub) Subscribe() (<-chan LiveAlert, func()) {
	s := &subscriber{ch: make(chan LiveAlert, subscriberBuffer)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	var once sync.Once
	return s.ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, s)
			h.mu.Unlock()
			close(s.ch)
		})
	}
}

// Subscribers returns how many streams are open.
func (h *Hub) Subscribers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// LastFindings returns, per detector, the latest finding time seen.
func (h *Hub) LastFindings() map[string]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]time.Time, len(h.lastFnd))
	for k, v := range h.lastFnd {
		out[k] = v
	}
	return out
}
