package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/store"
)

// Which origins' auth.token mints register with verify.ingest_may_mint
// false: a token's by its role (mint and admin, as for
// POST /v1/tokens/minted; a revoked one's earlier requests too), no
// other role's nor an unknown token's, serve's own inputs, the anonymous
// scope of --insecure-no-auth; not "http" (no spool: the poster is not
// known). Roles are read once; a store that cannot say registers nothing
// until it can.
func TestMintOrigins(t *testing.T) {
	tokens := []store.APIToken{
		{ID: "t-ingest", Role: "ingest"}, {ID: "t-mint", Role: "mint"}, {ID: "t-admin", Role: "admin"},
		{ID: "t-verify", Role: "verify"}, {ID: "t-analyst", Role: "analyst"},
		{ID: "t-mint-revoked", Role: "mint", Revoked: time.Unix(1, 0)},
	}
	var lists int
	var down bool
	m := newMintOrigins(func(context.Context) ([]store.APIToken, error) {
		lists++
		if down {
			return nil, errors.New("database is locked")
		}
		return tokens, nil
	}, slog.New(slog.DiscardHandler))
	for _, c := range []struct {
		origin string
		want   bool
	}{
		{ingest.Origin("t-ingest", ""), false},
		{ingest.Origin("t-mint", "k"), true},
		{ingest.Origin("t-admin", ""), true},
		{ingest.Origin("t-verify", ""), false},
		{ingest.Origin("t-analyst", ""), false},
		{ingest.Origin("t-mint-revoked", ""), true},
		{ingest.Origin("t-gone", ""), false},
		{ingest.Origin("", ""), true},
		{ingest.Origin("(tailer)", "tail:/var/log/auth.log:1"), true},
		{ingest.Origin(ingest.DrillScope, "run-1"), true},
		{ingest.Origin(ingest.VerifyScope, ""), true},
		{"http", false},
	} {
		if got := m.mayMint(c.origin); got != c.want {
			t.Errorf("%q: %v, want %v", c.origin, got, c.want)
		}
	}
	// One read for the first token asked about, one for the unknown one;
	// asking again reads nothing.
	if lists != 2 {
		t.Errorf("%d reads of the tokens, want 2", lists)
	}
	m.mayMint(ingest.Origin("t-gone", ""))
	m.mayMint(ingest.Origin("t-mint", ""))
	if lists != 2 {
		t.Errorf("%d reads after asking again, want 2", lists)
	}

	m = newMintOrigins(m.list, slog.New(slog.DiscardHandler))
	down = true
	if m.mayMint(ingest.Origin("t-mint", "")) {
		t.Error("the store cannot say: registered")
	}
	down = false
	if !m.mayMint(ingest.Origin("t-mint", "")) {
		t.Error("the store answers again: a mint token's mints are not registered")
	}
}
