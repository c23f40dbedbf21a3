package api_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

// hangStore: token look-ups block (until their context ends) while hang
// is set: a database that accepts the connection and never answers.
type hangStore struct {
	*store.Store
	hang atomic.Bool
}

func (s *hangStore) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	if s.hang.Load() {
		<-ctx.Done()
		return store.APIToken{}, ctx.Err()
	}
	return s.Store.TokenByHash(ctx, hash)
}

// StreamOutage bounds an outage of a store that hangs as of one that
// fails: each re-check is bounded, so a revoked token's stream closes.
// (Found by review: a hanging re-check kept the stream for as long as the
// store hung.)
func TestVerifyStreamStoreHangs(t *testing.T) {
	const every, outage = 20 * time.Millisecond, 300 * time.Millisecond
	st, tokens, ids := roleTokens(t)
	ds := &hangStore{Store: st}
	f := newVerifyFixture(t, api.VerifyOptions{StreamRecheck: every, StreamOutage: outage}, auth.New(auth.Options{Store: ds, CacheTTL: time.Second}))
	conn, br, code := openStream(t, f.srv.URL, tokens[auth.RoleVerify])
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %d", code)
	}
	// Revoked, then the store hangs: the revocation cannot be seen, and
	// the stream should close StreamOutage after the last vouch.
	if err := st.RevokeToken(context.Background(), ids[auth.RoleVerify], "test", time.Now()); err != nil {
		t.Fatal(err)
	}
	ds.hang.Store(true)
	time.Sleep(10 * outage)
	if streamAnswers(t, conn, br) {
		t.Errorf("a revoked token's stream still answers %v into a hanging store (StreamOutage %v)", 10*outage, outage)
	}
}
