package api_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
)

// While the store does not answer, every form of the inline check keeps
// answering verdicts to a gateway's verify token the store vouched for
// less than auth.DefaultStaleGrace ago: before, once the authenticator's
// CacheTTL (1 s in serve) of belief ran out, each answered 503 — and a
// fail-open gateway passed every token, forged ones included, for as long
// as the store was down, though the verdicts never need the store. Past
// the grace, and for an admin token at any time, the store is needed
// again (503). The authenticator is serve's (CacheTTL 1 s, the default
// grace) over a SQLite store whose token look-ups fail.
func TestVerifyFormsThroughStoreOutage(t *testing.T) {
	st, tokens, _ := roleTokens(t)
	ds := &outageStore{Store: st}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := newVerifyFixture(t, api.VerifyOptions{}, auth.New(auth.Options{Store: ds, CacheTTL: time.Second, Now: clock}))
	f.reg.Observe(&event.Event{Time: vnow.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	f.reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: vnow.Add(-time.Hour)})
	minted := map[string]string{api.HeaderTokenID: "tok-a", api.HeaderTokenKeyID: "k1"}
	forged := map[string]string{api.HeaderTokenID: "tok-f", api.HeaderTokenKeyID: "k1", api.HeaderTokenIssuedAt: "1780315200"}

	// forms answers each form of the check with tok: the status codes,
	// and what was answered when it was a verdict.
	forms := func(tok string) []string {
		var got []string
		for _, hdr := range []map[string]string{minted, forged} {
			code, h, _ := f.do(t, http.MethodGet, "/v1/verify/auth-request", tok, nil, hdr)
			got = append(got, "auth-request "+strconv.Itoa(code)+" "+h.Get(api.HeaderVerdict))
		}
		code, _, b := f.do(t, http.MethodPost, "/v1/verify", tok, api.VerifyRequest{TokenID: "tok-f", KeyID: "k1", IssuedAt: vnow}, nil)
		got = append(got, "verify "+strconv.Itoa(code)+" "+verdictOf(code, b))
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/verify/batch", strings.NewReader("tok-a\tk1\ntok-f\tk1\t1780315200\n"))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ans := ""
		if resp.StatusCode == http.StatusOK {
			ans = verdictsOf(string(body))
		}
		got = append(got, "batch "+strconv.Itoa(resp.StatusCode)+" "+ans)
		_, _, code = openStream(t, f.srv.URL, tok)
		got = append(got, "stream "+strconv.Itoa(code))
		return got
	}
	answering := []string{"auth-request 204 known", "auth-request 403 never_minted", "verify 200 never_minted",
		"batch 200 +known|-never_minted", "stream 101"}
	unavailable := []string{"auth-request 503 ", "auth-request 503 ", "verify 503 ", "batch 503 ", "stream 503"}

	steps := []struct {
		name    string
		advance time.Duration
		down    bool
		tok     auth.Role
		want    []string
	}{
		{"before the outage", 0, false, auth.RoleVerify, answering},
		{"the admin token, before the outage", 0, false, auth.RoleAdmin, answering},
		{"outage, past CacheTTL", 2 * time.Second, true, auth.RoleVerify, answering},
		{"outage, 20 s in", 18 * time.Second, true, auth.RoleVerify, answering},
		{"outage: the admin token has no grace", 0, true, auth.RoleAdmin, unavailable},
		{"outage, past the grace", 11 * time.Second, true, auth.RoleVerify, unavailable},
		{"the store answers again", 0, false, auth.RoleVerify, answering},
	}
	for _, s := range steps {
		advance(s.advance)
		ds.down.Store(s.down)
		if got := forms(tokens[s.tok]); strings.Join(got, "; ") != strings.Join(s.want, "; ") {
			t.Errorf("%s:\n got %q\nwant %q", s.name, got, s.want)
		}
	}
}

// verdictOf returns POST /v1/verify's verdict ("" when it did not answer
// one).
func verdictOf(code int, b []byte) string {
	if code != http.StatusOK {
		return ""
	}
	var a mint.Answer
	if json.Unmarshal(b, &a) != nil {
		return ""
	}
	return string(a.Verdict)
}

// verdictsOf returns a batch answer's verdicts, without the reasons.
func verdictsOf(body string) string {
	var v []string
	for _, line := range strings.Split(strings.TrimSuffix(body, "\n"), "\n") {
		v = append(v, strings.SplitN(line, "\t", 2)[0])
	}
	return strings.Join(v, "|")
}

// A gateway's redial and one-check requests are accepted through a store
// outage for as long as its open streams are kept: the two bounds are one.
func TestStaleGraceIsStreamOutage(t *testing.T) {
	if api.DefaultStreamOutage != auth.DefaultStaleGrace {
		t.Errorf("api.DefaultStreamOutage %v, auth.DefaultStaleGrace %v", api.DefaultStreamOutage, auth.DefaultStaleGrace)
	}
}
