package api

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/haechi-sec/haechi/internal/auth"
)

// maxCallerLimits bounds the limiters callerLimits keeps.
const maxCallerLimits = 4096

// callerLimits is one token-bucket limiter per caller (API token), all of
// the same rate and burst, so that one gateway running hot — or a
// leaked verify token — cannot spend the others' allowance. The map is
// bounded: a new caller finding it full first forgets the callers whose
// bucket has refilled (forgetting them changes nothing: a new limiter
// starts full), and when none has, shares one overflow limiter with every
// other caller beyond the bound.
type callerLimits struct {
	limit    rate.Limit
	burst    int
	mu       sync.RWMutex
	m        map[string]*rate.Limiter
	overflow *rate.Limiter
	max      int
}

func newCallerLimits(r float64, burst int) *callerLimits {
	return &callerLimits{limit: rate.Limit(r), burst: burst, m: map[string]*rate.Limiter{},
		overflow: rate.NewLimiter(rate.Limit(r), burst), max: maxCallerLimits}
}

// allow reports whether the caller of r may make n checks now (the
// limiters' own clock). A request without a caller (access control off)
// is the caller "".
func (c *callerLimits) allow(r *http.Request, n int) bool {
	var id string
	if cl, ok := auth.CallerFrom(r.Context()); ok {
		id = cl.TokenID
	}
	return c.allowID(id, n)
}

// allowID reports whether caller id (an API token's id, "" without
// access control) may make n checks now.
func (c *callerLimits) allowID(id string, n int) bool {
	now := time.Now()
	return c.of(id, now).AllowN(now, n)
}

// of returns id's limiter, made on first use.
func (c *callerLimits) of(id string, now time.Time) *rate.Limiter {
	c.mu.RLock()
	l, ok := c.m[id]
	c.mu.RUnlock()
	if ok {
		return l
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if l, ok := c.m[id]; ok {
		return l
	}
	if len(c.m) >= c.max {
		for k, l := range c.m {
			if l.TokensAt(now) >= float64(c.burst) {
				delete(c.m, k)
			}
		}
		if len(c.m) >= c.max {
			return c.overflow
		}
	}
	l = rate.NewLimiter(c.limit, c.burst)
	c.m[id] = l
	return l
}
