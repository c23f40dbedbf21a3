package demo

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/respond"
)

// TestGatewayEnforcesSignedWebhooks: a webhook with a bad signature is
// refused and counted; a signed revoke_key is applied, and from then on a
// gateway request signed by that key is rewritten as a 401 that touched
// nothing, while other requests pass unchanged.
func TestGatewayEnforcesSignedWebhooks(t *testing.T) {
	const secret = "s3cret"
	gw, err := newGateway(secret)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.close()
	post := func(body, sig string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, gw.url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		ts := strconv.FormatInt(time.Now().Unix(), 10)
		if sig == "" {
			sig = respond.Sign([]byte(secret), ts, []byte(body))
		}
		req.Header.Set(respond.HeaderTimestamp, ts)
		req.Header.Set(respond.HeaderSignature, sig)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	body := `{"kind":"` + respond.KindRevokeKey + `","target":"k1"}`
	if code := post(body, "v1=00"); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d, want 401", code)
	}
	mk := func(key string) (*event.Event, []byte) {
		ev := &event.Event{ID: "e-" + key, Time: time.Now().Add(-time.Hour), Dataset: event.DatasetGateway, Action: "read",
			User: event.User{ID: "c:1"}, Token: event.Token{ID: "t-" + key, KeyID: key}}
		return ev, []byte(`{"original":"` + key + `"}` + "\n")
	}
	var refusals []eval.Containment
	onRefuse := func(_ *event.Event, c eval.Containment) { refusals = append(refusals, c) }
	if ev, line := mk("k1"); string(gw.filter(ev, line, onRefuse)) != string(line) {
		t.Fatal("refused before any containment arrived")
	}
	if code := post(body, ""); code != http.StatusNoContent {
		t.Fatalf("signed webhook: %d, want 204", code)
	}
	ev, line := mk("k1")
	got := gw.filter(ev, line, onRefuse)
	var out struct {
		Event struct{ ID, Outcome string }
		HTTP  struct {
			Response struct {
				StatusCode int `json:"status_code"`
			}
		}
		Token struct {
			KeyID string `json:"key_id"`
		}
	}
	if err := json.Unmarshal(got, &out); err != nil {
		t.Fatalf("refused line %q: %v", got, err)
	}
	if out.Event.ID != "e-k1" || out.Event.Outcome != "failure" || out.HTTP.Response.StatusCode != http.StatusUnauthorized || out.Token.KeyID != "k1" {
		t.Errorf("refused line = %s", got)
	}
	if ev, line := mk("k2"); string(gw.filter(ev, line, onRefuse)) != string(line) {
		t.Error("a request signed by another key was refused")
	}
	// The refusal is reported, with the containment timed when its webhook
	// arrived: after the first k1 request (the scorecard's "contained by
	// revoke_key at …").
	if len(refusals) != 1 || refusals[0].Kind != respond.KindRevokeKey || refusals[0].Target.ID != "k1" || refusals[0].Time.IsZero() {
		t.Errorf("refusals = %+v, want one revoke_key of k1 at the time it arrived", refusals)
	}
	applied, refused, badSig, keys, principals, sources := gw.stats()
	if applied != 1 || refused != 1 || badSig != 1 || len(keys) != 1 || keys[0] != "k1" || len(principals) != 0 || sources != 0 {
		t.Errorf("stats = %d applied, %d refused, %d bad, keys %v, principals %v, %d sources", applied, refused, badSig, keys, principals, sources)
	}
}
