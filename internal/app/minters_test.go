package app_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/store"
)

// serveAuth starts serve on cfg with access control, runs f with its base
// URL and stops it.
func serveAuth(t *testing.T, cfg config.Config, f func(base string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Ready: func(u string) { ready <- u }, Announce: io.Discard})
	}()
	select {
	case base := <-ready:
		f(base)
	case err := <-done:
		t.Fatal(err)
	case <-time.After(60 * time.Second):
		t.Fatal("serve not ready")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// call sends body (JSON unless a string) with token and returns the
// status and the answer.
func call(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// issued is a contract auth.token / token.issued event line.
func issued(id string, at time.Time) string {
	return fmt.Sprintf(`{"@timestamp":%q,"event":{"dataset":"auth.token","action":"token.issued","outcome":"success"},"user":{"id":"c:1"},"token":{"id":%q,"key_id":"k1","issued_at":%q,"expires_at":%q}}`+"\n",
		at.Format(time.RFC3339), id, at.Format(time.RFC3339), at.Add(time.Hour).Format(time.RFC3339))
}

// routed reads haechi_events_routed_total: the events the engine took.
func routed(t *testing.T, base, admin string) int {
	t.Helper()
	code, b := call(t, http.MethodGet, base+"/metrics", admin, nil)
	if code != http.StatusOK {
		t.Fatalf("metrics: %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "haechi_events_routed_total "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(f)
		}
	}
	t.Fatal("no haechi_events_routed_total")
	return 0
}

// verify.ingest_may_mint: false closes the auth.token door to ingest
// tokens as it closes POST /v1/tokens/minted: a token.issued event posted
// with an ingest token reaches detection (the engine routes it) but
// registers no mint the inline check accepts — before, it did whatever
// the setting — while the same event posted with an admin token, and a
// mint token's POST /v1/tokens/minted, still register theirs, also after
// a restart (the spool's replay is judged by the poster's role too). With
// the default (true) the ingest token's mint registers, as before.
func TestServeIngestMayMintEvents(t *testing.T) {
	for _, may := range []bool{true, false} {
		t.Run(fmt.Sprintf("ingest_may_mint=%v", may), func(t *testing.T) {
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Listen = "127.0.0.1:0"
			cfg.Verify.IngestMayMint = may
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
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			now := time.Now().UTC().Truncate(time.Second)
			verdict := func(base, id string) mint.Verdict {
				t.Helper()
				code, b := call(t, http.MethodPost, base+"/v1/verify", tok[auth.RoleVerify], api.VerifyRequest{TokenID: id, KeyID: "k1", IssuedAt: now, UserID: "c:1"})
				if code != http.StatusOK {
					t.Fatalf("verify: %d %s", code, b)
				}
				var a mint.Answer
				if err := json.Unmarshal(b, &a); err != nil {
					t.Fatal(err)
				}
				return a.Verdict
			}
			wantIngest := mint.NeverMinted
			if may {
				wantIngest = mint.Known
			}
			check := func(base string) {
				t.Helper()
				for id, want := range map[string]mint.Verdict{"tok-ingest": wantIngest, "tok-admin": mint.Known, "tok-mint": mint.Known, "tok-forged": mint.NeverMinted} {
					if v := verdict(base, id); v != want {
						t.Errorf("%s: %s, want %s", id, v, want)
					}
				}
			}
			serveAuth(t, cfg, func(base string) {
				if code, b := call(t, http.MethodPost, base+"/v1/events", tok[auth.RoleIngest], issued("tok-ingest", now)+issued("tok-ingest-2", now)); code != http.StatusAccepted && code != http.StatusOK {
					t.Fatalf("ingest's events: %d %s", code, b)
				}
				if code, b := call(t, http.MethodPost, base+"/v1/events", tok[auth.RoleAdmin], issued("tok-admin", now)); code != http.StatusAccepted && code != http.StatusOK {
					t.Fatalf("admin's events: %d %s", code, b)
				}
				if code, b := call(t, http.MethodPost, base+"/v1/tokens/minted", tok[auth.RoleMint], api.MintBatch{Mints: []api.MintRequest{
					{TokenID: "tok-mint", KeyID: "k1", IssuedAt: now, ExpiresAt: now.Add(time.Hour), UserID: "c:1"}}}); code != http.StatusOK {
					t.Fatalf("mint: %d %s", code, b)
				}
				// The spool's consumer takes the records in order: once the
				// engine has routed all four events, every one was observed.
				deadline := time.Now().Add(20 * time.Second)
				for routed(t, base, tok[auth.RoleAdmin]) < 4 {
					if time.Now().After(deadline) {
						t.Fatalf("the engine routed %d of the 4 events", routed(t, base, tok[auth.RoleAdmin]))
					}
					time.Sleep(20 * time.Millisecond)
				}
				check(base)
			})
			serveAuth(t, cfg, check) // restored and replayed
		})
	}
}
