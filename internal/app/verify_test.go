package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/token"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// serveRun starts serve on cfg, runs f with its base URL and stops it.
func serveRun(t *testing.T, cfg config.Config, f func(base string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Ready: func(u string) { ready <- u }, InsecureNoAuth: true, Announce: io.Discard})
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

func postJSON(t *testing.T, url string, v any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

func verdict(t *testing.T, base string, q api.VerifyRequest) mint.Verdict {
	t.Helper()
	code, b := postJSON(t, base+"/v1/verify", q)
	if code != http.StatusOK {
		t.Fatalf("verify: %d %s", code, b)
	}
	var a mint.Answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a.Verdict
}

// A mint registered with serve is known at once and after a restart (the
// registry's checkpoint is stored at the detectors' mark; what the spool
// still retains is replayed on top of it, idempotently); a forged token
// is refused on both sides of the restart.
func TestServeMintRegistryRestart(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Verify.GRPCListen = "127.0.0.1:0" // started and stopped with serve
	now := time.Now().UTC().Truncate(time.Second)
	check := func(base string) {
		if v := verdict(t, base, api.VerifyRequest{TokenID: "tok-a", KeyID: "k1", IssuedAt: now}); v != mint.Known {
			t.Errorf("minted token: %s", v)
		}
		if v := verdict(t, base, api.VerifyRequest{TokenID: "tok-forged", KeyID: "k1", IssuedAt: now}); v != mint.NeverMinted {
			t.Errorf("forged token: %s", v)
		}
		// The binding to the user survives the restart.
		if v := verdict(t, base, api.VerifyRequest{TokenID: "tok-a", KeyID: "k1", IssuedAt: now, UserID: "c:1"}); v != mint.Known {
			t.Errorf("minted token, its own user: %s", v)
		}
		if v := verdict(t, base, api.VerifyRequest{TokenID: "tok-a", KeyID: "k1", IssuedAt: now, UserID: "c:2"}); v != mint.UserMismatch {
			t.Errorf("minted token, another user: %s", v)
		}
	}
	serveRun(t, cfg, func(base string) {
		code, b := postJSON(t, base+"/v1/tokens/minted", api.MintBatch{Mints: []api.MintRequest{
			{TokenID: "tok-a", KeyID: "k1", IssuedAt: now, ExpiresAt: now.Add(time.Hour), UserID: "c:1"}}})
		if code != http.StatusOK {
			t.Fatalf("register: %d %s", code, b)
		}
		check(base)
	})
	st, err := store.Open(context.Background(), cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// The forged token's refusal was audited (folded).
	log, err := st.AuditLog(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	refusedAudited := false
	for _, r := range log {
		if r.Kind == "verify_refused" && strings.Contains(string(r.Detail), "tok-forged") {
			refusedAudited = true
		}
	}
	if !refusedAudited {
		t.Error("the refusal was not audited")
	}
	// Its event went through the spool (durable before the pipeline saw
	// it), not straight to the pipeline.
	inSpool, mismatchInSpool := false, false
	_ = filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(path, "spool") {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(`"action":"verify.never_minted"`)) && bytes.Contains(b, []byte("tok-forged")) {
			inSpool = true
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(`"user":{"id":"c:2"},"token":{"id":"tok-a"`)) && bytes.Contains(b, []byte(`"action":"verify.user_mismatch"`)) {
			mismatchInSpool = true
		}
		return nil
	})
	if !inSpool {
		t.Error("the refusal's event is not in the spool")
	}
	if !mismatchInSpool {
		t.Error("the user_mismatch refusal's event, with the user presented, is not in the spool")
	}
	det, ok1, err1 := st.LoadCheckpoint(context.Background(), "detectors")
	reg, ok2, err2 := st.LoadCheckpoint(context.Background(), "mint_registry")
	st.Close()
	if err1 != nil || err2 != nil || !ok1 || !ok2 || det.Mark != reg.Mark {
		t.Fatalf("checkpoints: detectors %v %v mark %d, registry %v %v mark %d", ok1, err1, det.Mark, ok2, err2, reg.Mark)
	}
	serveRun(t, cfg, check)
}

// The forged_token playbook's revoke_key and revoke_token, executed in
// enforce mode, take effect in the inline check at once: every token of
// the revoked key — the forged one and a genuinely minted one — and the
// revoked token answer revoked. In dry-run they are planned and audited
// but not executed, so the registry is untouched (the hard twin).
func TestServeRevocationReachesRegistry(t *testing.T) {
	for _, mode := range []respond.Mode{respond.ModeEnforce, respond.ModeDryRun} {
		t.Run(string(mode), func(t *testing.T) {
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			defer recv.Close()
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Listen = "127.0.0.1:0"
			cfg.Respond.Mode = mode
			cfg.Respond.Secret = "s3cret"
			cfg.Respond.Receivers = map[string]respond.Receiver{}
			for _, k := range respond.ActionKinds {
				cfg.Respond.Receivers[k] = respond.Receiver{URL: recv.URL, AllowPrivate: true}
			}
			now := time.Now().UTC().Truncate(time.Second)
			// A forged-token alert about key k1, naming the forged
			// token tok-forged, as token_provenance raises it; its
			// actions are planned by the shipped playbook and left in
			// the outbox for serve's dispatcher.
			key, _, err := app.AuditKey(cfg, true)
			if err != nil {
				t.Fatal(err)
			}
			st, err := store.Open(t.Context(), cfg.StoreTarget(), store.Options{AuditKey: key})
			if err != nil {
				t.Fatal(err)
			}
			pl, err := respond.NewPlanner(cfg.Respond)
			if err != nil {
				t.Fatal(err)
			}
			kk := event.EntityKey{Kind: event.EntitySigningKey, ID: "k1"}
			acts := pl.Plan(event.Alert{ID: "a1", Time: now, Entity: kk, Severity: event.SeverityCritical, Score: 95,
				Title: "forged token", Detector: token.Name, State: event.AlertOpen,
				Findings: []event.Finding{{Detector: token.Name, Kind: token.KindNeverMinted, Entity: kk, Time: now,
					Related: []event.EntityKey{{Kind: event.EntityToken, ID: "tok-forged"}}}}})
			kinds := map[string]string{}
			for _, a := range acts {
				kinds[a.Kind] = a.State
			}
			if kinds[respond.KindRevokeKey] == "" || kinds[respond.KindRevokeToken] == "" {
				t.Fatalf("planned %v, want revoke_key and revoke_token", kinds)
			}
			if _, err := st.InsertActions(t.Context(), acts, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			serveRun(t, cfg, func(base string) {
				code, b := postJSON(t, base+"/v1/tokens/minted", api.MintBatch{Mints: []api.MintRequest{
					{TokenID: "tok-a", KeyID: "k1", IssuedAt: now, ExpiresAt: now.Add(time.Hour)},
					{TokenID: "tok-b", KeyID: "k2", IssuedAt: now, ExpiresAt: now.Add(time.Hour)}}})
				if code != http.StatusOK {
					t.Fatalf("register: %d %s", code, b)
				}
				want := map[api.VerifyRequest]mint.Verdict{
					{TokenID: "tok-a", KeyID: "k1", IssuedAt: now}:      mint.Known,
					{TokenID: "tok-a", IssuedAt: now}:                   mint.Known,
					{TokenID: "tok-other", KeyID: "k1", IssuedAt: now}:  mint.NeverMinted,
					{TokenID: "tok-forged", KeyID: "k3", IssuedAt: now}: mint.NeverMinted,
					{TokenID: "tok-b", KeyID: "k2", IssuedAt: now}:      mint.Known,
				}
				if mode == respond.ModeEnforce {
					want[api.VerifyRequest{TokenID: "tok-a", KeyID: "k1", IssuedAt: now}] = mint.Revoked
					want[api.VerifyRequest{TokenID: "tok-a", IssuedAt: now}] = mint.Revoked
					want[api.VerifyRequest{TokenID: "tok-other", KeyID: "k1", IssuedAt: now}] = mint.Revoked
					want[api.VerifyRequest{TokenID: "tok-forged", KeyID: "k3", IssuedAt: now}] = mint.Revoked
					// The dispatcher executes the actions in some order,
					// concurrently: wait until both revocations are in.
					deadline := time.Now().Add(20 * time.Second)
					for time.Now().Before(deadline) && (verdict(t, base, api.VerifyRequest{TokenID: "tok-b", KeyID: "k1", IssuedAt: now}) != mint.Revoked ||
						verdict(t, base, api.VerifyRequest{TokenID: "tok-forged", KeyID: "k3", IssuedAt: now}) != mint.Revoked) {
						time.Sleep(20 * time.Millisecond)
					}
				} else {
					time.Sleep(300 * time.Millisecond) // a dispatcher pass or more
				}
				for q, w := range want {
					if v := verdict(t, base, q); v != w {
						t.Errorf("%s/%s: %s, want %s", q.TokenID, q.KeyID, v, w)
					}
				}
			})
		})
	}
}

// With no receiver configured for revoke_key and revoke_token, serve
// still plans them in enforce mode (the mint registry is their local
// receiver) and its dispatcher executes them: the inline check answers
// revoked, and the outbox records them delivered, applied locally. In
// dry-run they stay dry-run and revoke nothing (the twin).
func TestRevocationWithoutReceiver(t *testing.T) {
	for _, mode := range []respond.Mode{respond.ModeEnforce, respond.ModeDryRun} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			cfg := config.Default()
			cfg.DataDir = t.TempDir()
			cfg.Verify.Enabled = true
			cfg.Respond.Mode = mode
			svc, err := app.Build(ctx, app.BuildOptions{Config: cfg, Mode: app.ModeLive})
			if err != nil {
				t.Fatal(err)
			}
			svc.Start(ctx)
			defer svc.Close(ctx)
			now := time.Now().UTC().Truncate(time.Second)
			svc.Mints.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", IssuedAt: now, ExpiresAt: now.Add(time.Hour), At: now})
			kk := event.EntityKey{Kind: event.EntitySigningKey, ID: "k1"}
			acts := svc.Planner.Plan(event.Alert{ID: "a1", Time: now, Entity: kk, Severity: event.SeverityCritical, Score: 95,
				Title: "forged token", Detector: token.Name, State: event.AlertOpen,
				Findings: []event.Finding{{Detector: token.Name, Kind: token.KindNeverMinted, Entity: kk, Time: now,
					Related: []event.EntityKey{{Kind: event.EntityToken, ID: "tok-forged"}}}}})
			want := respond.StatePlanned
			if mode == respond.ModeDryRun {
				want = respond.StateDryRun
			}
			ids := map[string]string{}
			for _, a := range acts {
				if a.Kind == respond.KindRevokeKey || a.Kind == respond.KindRevokeToken {
					ids[a.Kind] = a.ID
					if a.State != want {
						t.Errorf("%s %s: %s (%s), want %s", a.Kind, a.Target, a.State, a.Reason, want)
					}
				}
			}
			if len(ids) != 2 {
				t.Fatalf("planned %+v, want revoke_key and revoke_token", acts)
			}
			if _, err := svc.Store.InsertActions(ctx, acts, time.Now()); err != nil {
				t.Fatal(err)
			}
			svc.Dispatcher.Wake()
			wantVerdict, wantState := mint.Revoked, respond.StateDelivered
			if mode == respond.ModeDryRun {
				wantVerdict, wantState = mint.Known, respond.StateDryRun
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				done := true
				for kind, id := range ids {
					a, err := svc.Store.GetAction(ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if a.State != wantState {
						done = false
						if time.Now().After(deadline) {
							t.Fatalf("%s: %s (%s), want %s", kind, a.State, a.LastError, wantState)
						}
					}
				}
				if done {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if mode == respond.ModeDryRun {
				time.Sleep(300 * time.Millisecond) // a dispatcher pass or more
			}
			for _, q := range []mint.Query{
				{TokenID: "tok-a", KeyID: "k1", IssuedAt: now, Now: now},
				{TokenID: "tok-forged", IssuedAt: now, Now: now},
			} {
				w := wantVerdict
				if q.TokenID == "tok-forged" && mode == respond.ModeDryRun {
					w = mint.NeverMinted
				}
				if a := svc.Mints.Verify(q); a.Verdict != w {
					t.Errorf("%s: %s %v, want %s", q.TokenID, a.Verdict, a.Reasons, w)
				}
			}
		})
	}
}

// The Go middleware's stream reaches serve's check: a forged token is
// refused over it and the refusal is audited as any other; at shutdown
// serve closes the stream, so the gateway learns it at once (its checks
// fail, the mode decides) instead of holding a connection to a stopped
// server.
func TestServeCheckStream(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	now := time.Now().UTC().Truncate(time.Second)
	var chk *gateway.Checker
	serveRun(t, cfg, func(base string) {
		code, b := postJSON(t, base+"/v1/tokens/minted", api.MintBatch{Mints: []api.MintRequest{
			{TokenID: "tok-a", KeyID: "k1", IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Hour)}}})
		if code != http.StatusOK {
			t.Fatalf("register: %d %s", code, b)
		}
		var err error
		chk, err = gateway.New(gateway.Options{URL: base, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		a, err := chk.Check(context.Background(), r, gateway.Token{ID: "tok-stream-forged", KeyID: "k1", IssuedAt: now})
		if err != nil || a.Verdict != string(mint.NeverMinted) {
			t.Fatalf("over the stream: %+v %v", a, err)
		}
	})
	defer chk.Close()
	start := time.Now()
	_, err := chk.Check(context.Background(), httptest.NewRequest(http.MethodGet, "/", nil), gateway.Token{ID: "tok-a", KeyID: "k1", IssuedAt: now})
	if !errors.Is(err, gateway.ErrUnavailable) || time.Since(start) > 2*time.Second {
		t.Errorf("after shutdown: %v after %v, want ErrUnavailable at once", err, time.Since(start))
	}
	st, err := store.Open(context.Background(), cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	log, err := st.AuditLog(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range log {
		if r.Kind == "verify_refused" && strings.Contains(string(r.Detail), "tok-stream-forged") {
			return
		}
	}
	t.Error("the refusal over the stream was not audited")
}
