package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestServeIdempotencyKeysPerToken: over real HTTP with real tokens, two
// shippers using the same Idempotency-Key both have their batches stored
// and processed; a shipper reusing its key with another batch (a
// restarted batch counter) is told 422 instead of being acknowledged and
// dropped; a retry is stored once; the "tail:" key space is refused.
func TestServeIdempotencyKeysPerToken(t *testing.T) {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tokA, _, errA := auth.CreateToken(ctx, st, auth.RoleIngest, "shipper a", time.Now())
	tokB, _, errB := auth.CreateToken(ctx, st, auth.RoleIngest, "shipper b", time.Now())
	if err := st.Close(); errA != nil || errB != nil || err != nil {
		t.Fatal(errA, errB, err)
	}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Announce: io.Discard, Ready: func(u string) { ready <- u }})
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not start")
	}
	lines := strings.SplitAfter(string(contract(t)), "\n")
	batch1 := []byte(strings.Join(lines[:10], "")) // 10 events
	batch2 := []byte(strings.Join(lines[10:], "")) // 5 events
	batch3 := []byte(strings.Join(lines[:3], ""))  // 3 events
	post := func(token, key string, body []byte) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		token, key string
		body       []byte
		code       int
		answer     string
	}{
		{tokA, "batch-1", batch1, 200, `"accepted":10`},
		{tokB, "batch-1", batch2, 200, `"accepted":5`},  // another token's key: its own
		{tokA, "batch-1", batch1, 200, `"accepted":10`}, // a retry: answered, not stored again
		{tokA, "batch-1", batch2, 422, `Idempotency-Key \"batch-1\" was first used at`},
		{tokA, "tail:1:2:ab:0-100", batch3, 400, "reserved"},
	} {
		if code, answer := post(c.token, c.key, c.body); code != c.code || !strings.Contains(answer, c.answer) {
			t.Errorf("%s %s: %d %s; want %d %s", c.key, c.body[:20], code, answer, c.code, c.answer)
		}
	}
	// Both batches are processed, once each.
	processed := regexp.MustCompile(`(?m)^haechi_events_processed_total (\d+)$`)
	var n int
	for deadline := time.Now().Add(15 * time.Second); n != 15 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tokA)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if m := processed.FindSubmatch(b); m != nil {
			n, _ = strconv.Atoi(string(m[1]))
		}
	}
	if n != 15 {
		t.Errorf("events processed: %d, want 15 (10 of shipper a, 5 of shipper b)", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}
