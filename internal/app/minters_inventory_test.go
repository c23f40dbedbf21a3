package app_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/store"
)

// With verify.ingest_may_mint false, an ingest token's keys.inventory
// events do not reach the registry the check reads either: one event
// naming another key would turn the inventory on (every token of an
// unlisted key refused unknown_key), and one retiring a key would retire
// it for good (the earliest retirement wins), refusing every new login it
// signs. (Found by review; both failed before.)
func TestServeIngestMayMintInventory(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Verify.IngestMayMint = false
	st, err := store.Open(t.Context(), cfg.StoreTarget(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := map[auth.Role]string{}
	for _, r := range []auth.Role{auth.RoleIngest, auth.RoleMint, auth.RoleAdmin, auth.RoleVerify} {
		if tok[r], _, err = auth.CreateToken(t.Context(), st, r, string(r), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	now := time.Now().UTC().Truncate(time.Second)
	verdict := func(base, id string) mint.Verdict {
		code, b := call(t, http.MethodPost, base+"/v1/verify", tok[auth.RoleVerify], api.VerifyRequest{TokenID: id, KeyID: "k1", IssuedAt: now, UserID: "c:1"})
		if code != http.StatusOK {
			t.Fatalf("verify: %d %s", code, b)
		}
		var a mint.Answer
		_ = json.Unmarshal(b, &a)
		return a.Verdict
	}
	serveAuth(t, cfg, func(base string) {
		if code, b := call(t, http.MethodPost, base+"/v1/tokens/minted", tok[auth.RoleMint], api.MintBatch{Mints: []api.MintRequest{
			{TokenID: "tok-mint", KeyID: "k1", IssuedAt: now, ExpiresAt: now.Add(time.Hour), UserID: "c:1"}}}); code != http.StatusOK {
			t.Fatalf("mint: %d %s", code, b)
		}
		if v := verdict(base, "tok-mint"); v != mint.Known {
			t.Fatalf("before: tok-mint %s", v)
		}
		ev := `{"@timestamp":"2025-01-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.created"},"key":{"id":"k-bogus","status":"active"}}` + "\n"
		if code, b := call(t, http.MethodPost, base+"/v1/events", tok[auth.RoleIngest], ev); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("ingest: %d %s", code, b)
		}
		deadline := time.Now().Add(20 * time.Second)
		for routed(t, base, tok[auth.RoleAdmin]) < 2 && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if v := verdict(base, "tok-mint"); v != mint.Known {
			t.Errorf("an ingest token changed a minted token's verdict to %s with ingest_may_mint: false", v)
		}
		// Retire k1 as of 2000 (ingest token), then the admin lists k1 active again.
		ret := `{"@timestamp":"2025-01-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.updated"},"key":{"id":"k1","status":"active","retired_at":"2000-01-01T00:00:00Z"}}` + "\n"
		if code, b := call(t, http.MethodPost, base+"/v1/events", tok[auth.RoleIngest], ret); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("ingest: %d %s", code, b)
		}
		fix := `{"@timestamp":"2026-01-01T00:00:00Z","event":{"dataset":"keys.inventory","action":"key.updated"},"key":{"id":"k1","status":"active"}}` + "\n"
		if code, b := call(t, http.MethodPost, base+"/v1/events", tok[auth.RoleAdmin], fix); code != http.StatusAccepted && code != http.StatusOK {
			t.Fatalf("admin: %d %s", code, b)
		}
		for routed(t, base, tok[auth.RoleAdmin]) < 4 && time.Now().Before(deadline.Add(20*time.Second)) {
			time.Sleep(20 * time.Millisecond)
		}
		// The ingest token's retirement was not folded: a token of k1
		// never minted is never_minted, not retired_key.
		if v := verdict(base, "tok-new"); v != mint.NeverMinted {
			t.Errorf("k1 retired by an ingest token, re-listed active by the admin: a new token of k1 is %s, want %s", v, mint.NeverMinted)
		}
	})
}
