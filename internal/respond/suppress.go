package respond

import (
	"context"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// Suppressions answers whether an alert is suppressed, from the store's
// suppressions in force, re-read at most every Refresh (default 5s), so a
// suppression added through the API or the CLI takes effect within it.
type Suppressions struct {
	st      *store.Store
	Refresh time.Duration
	Now     func() time.Time

	mu     sync.Mutex
	list   []store.Suppression
	loaded time.Time
}

// NewSuppressions returns a cache over st.
func NewSuppressions(st *store.Store) *Suppressions {
	return &Suppressions{st: st, Refresh: 5 * time.Second, Now: time.Now}
}

// SuppressFinding implements alert.Suppressor: the suppression covering
// f (its entity, and its detector and kind when the suppression names
// them), if any. A store error is treated as "none" (the finding adds
// risk) and retried at the next call.
func (s *Suppressions) SuppressFinding(f *event.Finding) (string, bool) {
	if s == nil {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	s.refresh(now)
	for _, sp := range s.list {
		if sp.MatchesFinding(f, now) {
			return sp.ID, true
		}
	}
	return "", false
}

func (s *Suppressions) refresh(now time.Time) {
	if now.Sub(s.loaded) < s.Refresh {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if list, err := s.st.ListSuppressions(ctx, now, false); err == nil {
		s.list, s.loaded = list, now
	}
}

// Match returns the suppression covering a, if any. A store error is
// treated as "none" (response goes ahead) and retried at the next call.
func (s *Suppressions) Match(ctx context.Context, a event.Alert) (store.Suppression, bool) {
	if s == nil {
		return store.Suppression{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.Now()
	s.refresh(now)
	for _, sp := range s.list {
		if sp.Matches(a, now) {
			return sp, true
		}
	}
	return store.Suppression{}, false
}
