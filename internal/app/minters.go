package app

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/ingest"
	"github.com/haechi-sec/haechi/internal/store"
)

// mintOrigins says, with verify.ingest_may_mint false, which origins'
// auth.token events may register mints in the registry the inline check
// reads (PipelineOptions.MintsFrom): those posted with a token whose role
// may register mints through POST /v1/tokens/minted (mint, admin: the
// same rule), the anonymous scope of --insecure-no-auth (anyone may do
// anything), and serve's own inputs — the files the operator configured
// it to tail, its drills, the inline check's refusals. Not those posted
// with any other role (ingest), nor, without the spool, the events of
// POST /v1/events, whose poster the pipeline is not told (origin "http";
// POST /v1/tokens/minted adds its mints to the registry itself).
//
// A token's role is read from the store by its id (ingest.OriginToken)
// and remembered: roles never change, and a revoked token's earlier
// requests replayed from the spool are judged by the role it had. A
// store that cannot say registers nothing from that batch (logged): the
// setting chose to trust only what it can vouch for.
type mintOrigins struct {
	list func(context.Context) ([]store.APIToken, error)
	log  *slog.Logger

	mu sync.Mutex
	// roles holds each token id asked about: its role, or "" when the
	// store has no such token.
	roles map[string]auth.Role
	// warned holds the tokens whose mints were not registered, logged
	// once each.
	warned map[string]struct{}
	// failing: the last look-up failed (logged once per run of failures).
	failing bool
}

func newMintOrigins(list func(context.Context) ([]store.APIToken, error), log *slog.Logger) *mintOrigins {
	return &mintOrigins{list: list, log: log, roles: map[string]auth.Role{}, warned: map[string]struct{}{}}
}

// mayMint reports whether the auth.token mints of a batch of origin may be
// registered. It is called from the spool's consumer (and, without the
// spool, from HTTP handlers) and is safe for concurrent use.
func (m *mintOrigins) mayMint(origin string) bool {
	id, ok := ingest.OriginToken(origin)
	if !ok {
		return origin != "http" // serve's own inputs; "http": the poster is not known
	}
	if id == "" {
		return true // --insecure-no-auth: no roles
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	role, known := m.roles[id]
	if !known {
		if !m.load(id) {
			return false
		}
		role = m.roles[id]
	}
	if role.Allows(auth.NeedMint) {
		return true
	}
	if _, ok := m.warned[id]; !ok {
		m.warned[id] = struct{}{}
		m.log.Warn("mint registry: auth.token events posted with a token whose role may not register mints are not registered (verify.ingest_may_mint: false); detection still sees them. Register mints with a mint token (POST /v1/tokens/minted)",
			"token", id, "role", string(role))
	}
	return false
}

// load reads every token's role from the store, and records id as
// unknown if it is not among them; false when the store cannot say.
func (m *mintOrigins) load(id string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ts, err := m.list(ctx)
	if err != nil {
		if !m.failing {
			m.log.Error("mint registry: cannot read the role of the token that posted auth.token events; their mints are not registered (verify.ingest_may_mint: false)",
				"token", id, "err", err)
			m.failing = true
		}
		return false
	}
	if m.failing {
		m.log.Info("mint registry: the tokens' roles can be read again")
		m.failing = false
	}
	for _, t := range ts {
		m.roles[t.ID] = auth.Role(t.Role)
	}
	if _, ok := m.roles[id]; !ok {
		m.roles[id] = ""
	}
	return true
}
