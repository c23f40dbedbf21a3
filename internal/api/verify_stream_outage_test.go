package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/store"
)

// outageStore is a store whose token look-ups fail while down is set, as
// a database that does not answer (not a token that is gone).
type outageStore struct {
	*store.Store
	down atomic.Bool
}

func (s *outageStore) TokenByHash(ctx context.Context, hash string) (store.APIToken, error) {
	if s.down.Load() {
		return store.APIToken{}, fmt.Errorf("token: %w", errors.New("database is locked"))
	}
	return s.Store.TokenByHash(ctx, hash)
}

// streamAnswers reports whether the stream still answers a check.
func streamAnswers(t *testing.T, conn net.Conn, br *bufio.Reader) bool {
	t.Helper()
	if _, err := io.WriteString(conn, "tok-a\n"); err != nil {
		return false
	}
	got, err := readLines(t, conn, br, 1)
	return err == nil && strings.HasPrefix(got, "+")
}

// waitClosed waits up to limit for the stream to end and returns how long
// that took (or fails the test).
func waitClosed(t *testing.T, conn net.Conn, br *bufio.Reader, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(limit))
	if _, err := br.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("the stream did not close within %v: %v", limit, err)
	}
	return time.Since(start)
}

// A store that does not answer does not close the check streams: before,
// any re-check error but a bad token closed every stream at its next
// re-check, and a fail-open gateway then passed every token, forged ones
// included, while the store was down — though the verdicts never need the
// store. The stream is kept for StreamOutage after the store last vouched
// for its token, then closed; a token the store says is revoked still
// closes its stream at the next re-check, during an outage or after it.
func TestVerifyStreamStoreOutage(t *testing.T) {
	const every = 20 * time.Millisecond
	open := func(t *testing.T, outage time.Duration) (*outageStore, map[auth.Role]string, net.Conn, *bufio.Reader) {
		st, tokens, ids := roleTokens(t)
		ds := &outageStore{Store: st}
		f := newVerifyFixture(t, api.VerifyOptions{StreamRecheck: every, StreamOutage: outage}, auth.New(auth.Options{Store: ds, CacheTTL: time.Second}))
		conn, br, code := openStream(t, f.srv.URL, tokens[auth.RoleVerify])
		if code != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade: %d", code)
		}
		if !streamAnswers(t, conn, br) {
			t.Fatal("no answer before the outage")
		}
		return ds, ids, conn, br
	}

	t.Run("transient, then recovers", func(t *testing.T) {
		const outage = 3 * time.Second
		ds, _, conn, br := open(t, outage)
		for round := range 2 {
			ds.down.Store(true)
			time.Sleep(300 * time.Millisecond) // ~15 failed re-checks
			if !streamAnswers(t, conn, br) {
				t.Fatalf("round %d: the stream closed while the store did not answer for 300 ms (bound %v)", round, outage)
			}
			ds.down.Store(false)
			// The bound counts from the last re-check the store answered:
			// after it recovers, another short outage is tolerated again,
			// though the two together outlast the bound.
			time.Sleep(outage * 2 / 3)
			if !streamAnswers(t, conn, br) {
				t.Fatalf("round %d: the stream closed after the store recovered", round)
			}
		}
	})

	t.Run("keeps failing past the bound", func(t *testing.T) {
		const outage = 1500 * time.Millisecond
		ds, _, conn, br := open(t, outage)
		down := time.Now()
		ds.down.Store(true)
		time.Sleep(outage / 3)
		if !streamAnswers(t, conn, br) {
			t.Fatal("the stream closed early in the outage")
		}
		waitClosed(t, conn, br, outage+10*time.Second)
		// It cannot close before the store last vouched + outage, and
		// that was at most a re-check before the outage began.
		if d := time.Since(down); d < outage-every {
			t.Errorf("closed %v into the outage, want no sooner than the %v bound", d, outage)
		}
	})

	t.Run("revoked", func(t *testing.T) {
		ds, ids, conn, br := open(t, time.Hour)
		if err := ds.RevokeToken(context.Background(), ids[auth.RoleVerify], "test", time.Now()); err != nil {
			t.Fatal(err)
		}
		if d := waitClosed(t, conn, br, 10*time.Second); d > 2*time.Second { // one 20 ms re-check, slack for a loaded machine
			t.Errorf("closed %v after the revocation, want within a re-check", d)
		}
	})

	t.Run("revoked during an outage", func(t *testing.T) {
		ds, ids, conn, br := open(t, time.Hour)
		ds.down.Store(true)
		if err := ds.RevokeToken(context.Background(), ids[auth.RoleVerify], "test", time.Now()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		if !streamAnswers(t, conn, br) {
			t.Fatal("closed while the store could not say the token was revoked")
		}
		ds.down.Store(false)
		if d := waitClosed(t, conn, br, 10*time.Second); d > 2*time.Second {
			t.Errorf("closed %v after the store answered again, want within a re-check", d)
		}
	})
}
