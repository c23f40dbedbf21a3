package demo

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/respond"
)

// gateway is the simulated company's API gateway and identity
// provider in the demo: it receives haechi's signed containment webhooks
// and refuses the requests they cover from then on, so the demo shows an
// attack being stopped and the scorecard counts what the attacker really
// got.
type gateway struct {
	secret string

	mu   sync.Mutex
	gate *eval.Gate // in force from the moment a webhook arrives
	// last is the event time of the latest request through the gateway,
	// and arrived the last of each containment when its webhook came:
	// when, in simulated time, the containment took hold.
	last       time.Time
	arrived    map[string]time.Time
	keys       map[string]bool
	sources    map[string]bool
	principals map[string]bool
	applied    int
	refused    int
	badSig     int

	srv *http.Server
	url string
}

func newGateway(secret string) (*gateway, error) {
	g := &gateway{secret: secret, gate: eval.NewGate(nil), arrived: map[string]time.Time{}, keys: map[string]bool{}, sources: map[string]bool{}, principals: map[string]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	g.url = "http://" + ln.Addr().String() + "/hooks"
	g.srv = &http.Server{Handler: http.HandlerFunc(g.hook), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = g.srv.Serve(ln) }()
	return g, nil
}

func (g *gateway) close() { _ = g.srv.Shutdown(context.Background()) }

// hook verifies a webhook's signature and applies it.
func (g *gateway) hook(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := respond.VerifySignature(g.secret, r.Header.Get("X-Haechi-Timestamp"), string(body), r.Header.Get("X-Haechi-Signature"), time.Now(), time.Minute); err != nil {
		g.mu.Lock()
		g.badSig++
		g.mu.Unlock()
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var a struct{ Kind, Target string }
	if err := json.Unmarshal(body, &a); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	// The events are posted live, so a containment is in force for every
	// event that reaches the gateway after it (their event times are
	// behind the wall clock; any time before them will do).
	if c, ok := eval.ContainmentOf(a.Kind, a.Target, time.Time{}); ok {
		g.gate.Add(c)
		if _, seen := g.arrived[containmentKey(c)]; !seen {
			g.arrived[containmentKey(c)] = g.last
		}
	}
	switch a.Kind {
	case respond.KindRevokeKey:
		g.keys[a.Target] = true
	case respond.KindDisableIdentity:
		g.principals[a.Target] = true
	case respond.KindBlockSource:
		g.sources[a.Target] = true
	}
	g.applied++
	w.WriteHeader(http.StatusNoContent)
}

func containmentKey(c eval.Containment) string { return c.Kind + "\x00" + c.Target.String() }

// filter refuses a request the gateway has been told to contain: the
// event is rewritten as a 401 that touched no records. onRefuse, if not
// nil, is told of a refusal before the rewrite, with the containment that
// refused it timed when its webhook arrived (the event time of the
// request through the gateway just before it): the scorecard's
// "contained by … at".
func (g *gateway) filter(ev *event.Event, line []byte, onRefuse func(*event.Event, eval.Containment)) []byte {
	if ev.Dataset != event.DatasetGateway && ev.Dataset != event.DatasetToken {
		return line
	}
	g.mu.Lock()
	c, refuse := g.gate.Refuse(ev)
	if refuse {
		g.refused++
		c.Time = g.arrived[containmentKey(c)]
	}
	if ev.Time.After(g.last) {
		g.last = ev.Time
	}
	g.mu.Unlock()
	if !refuse {
		return line
	}
	if onRefuse != nil {
		onRefuse(ev, c)
	}
	eval.Apply(ev)
	out := map[string]any{
		"@timestamp": ev.Time.UTC().Format(time.RFC3339Nano),
		"event":      map[string]any{"id": ev.ID, "dataset": ev.Dataset, "action": ev.Action, "outcome": "failure"},
		"http":       map[string]any{"response": map[string]any{"status_code": http.StatusUnauthorized}},
	}
	if ev.User.ID != "" {
		out["user"] = map[string]any{"id": ev.User.ID, "roles": ev.User.Roles}
	}
	if ev.Source.IP.IsValid() {
		src := map[string]any{"ip": ev.Source.IP.String()}
		if ev.Source.Country != "" {
			src["geo"] = map[string]any{"country_iso_code": ev.Source.Country}
		}
		if ev.Source.ASN != 0 {
			src["as"] = map[string]any{"number": ev.Source.ASN, "organization": map[string]any{"name": ev.Source.ASOrg}}
		}
		out["source"] = src
	}
	if ev.Token.ID != "" {
		out["token"] = map[string]any{"id": ev.Token.ID, "key_id": ev.Token.KeyID}
	}
	if ev.UserAgent != "" {
		out["user_agent"] = map[string]any{"original": ev.UserAgent}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return line
	}
	return append(b, '\n')
}

func (g *gateway) stats() (applied, refused, badSig int, keys, principals []string, sources int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range g.keys {
		keys = append(keys, k)
	}
	for p := range g.principals {
		principals = append(principals, p)
	}
	return g.applied, g.refused, g.badSig, keys, principals, len(g.sources)
}
