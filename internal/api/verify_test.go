package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/input"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/store"
)

var vnow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

type verifyFixture struct {
	srv     *httptest.Server
	reg     *mint.Registry
	spooled [][]byte
	failing error
}

func newVerifyFixture(t *testing.T, opts api.VerifyOptions, authn *auth.Authenticator, mo ...mint.Options) *verifyFixture {
	t.Helper()
	o := mint.Options{MaxLifetime: 12 * time.Hour, ClockSkew: time.Minute}
	if len(mo) > 0 {
		o = mo[0]
	}
	f := &verifyFixture{reg: mint.New(o)}
	opts.Registry = f.reg
	f.srv = httptest.NewServer(api.New(api.Options{
		Alerts: &fakeStore{},
		Spool: func(_ context.Context, req api.Stored) (bool, error) {
			if f.failing != nil {
				return false, f.failing
			}
			f.spooled = append(f.spooled, req.Body)
			return false, nil
		},
		Now:    func() time.Time { return vnow },
		Verify: opts,
		Auth:   authn,
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *verifyFixture) do(t *testing.T, method, path, token string, body any, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (f *verifyFixture) verify(t *testing.T, q api.VerifyRequest) mint.Answer {
	t.Helper()
	code, _, b := f.do(t, http.MethodPost, "/v1/verify", "", q, nil)
	if code != http.StatusOK {
		t.Fatalf("verify: %d %s", code, b)
	}
	var a mint.Answer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMintedThenVerify(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{}, nil)
	batch := api.MintBatch{Mints: []api.MintRequest{
		{TokenID: "tok-a", KeyID: "k1", IssuedAt: vnow.Add(-time.Minute), ExpiresAt: vnow.Add(time.Hour), UserID: "c:1",
			SourceIP: "203.0.113.7", Country: "KR", ASN: 4766, UserAgent: "curl/8.5.0"},
		{TokenID: "tok-b", KeyID: "k1"},
	}}
	code, _, b := f.do(t, http.MethodPost, "/v1/tokens/minted", "", batch, nil)
	if code != http.StatusOK || !strings.Contains(string(b), `"registered":2`) {
		t.Fatalf("register: %d %s", code, b)
	}
	// The mints were spooled as events of the contract, which the
	// pipeline's decoder reads back as mints.
	if len(f.spooled) != 1 {
		t.Fatalf("spooled %d bodies", len(f.spooled))
	}
	rd, err := input.Open(input.FormatECS, bytes.NewReader(f.spooled[0]), 1, input.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []event.Event
	for {
		var ev event.Event
		if err := rd.Next(&ev); err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatalf("spooled line: %v", err)
			}
			break
		}
		evs = append(evs, ev)
	}
	if len(evs) != 2 {
		t.Fatalf("decoded %d events", len(evs))
	}
	e := evs[0]
	if e.Dataset != event.DatasetToken || e.Action != event.ActionTokenIssued || e.Outcome != event.OutcomeSuccess ||
		e.Token.ID != "tok-a" || e.Token.KeyID != "k1" || !e.Token.ExpiresAt.Equal(vnow.Add(time.Hour)) || e.User.ID != "c:1" ||
		e.Source.IP != netip.MustParseAddr("203.0.113.7") || e.Source.Country != "KR" || e.Source.ASN != 4766 || e.UserAgent != "curl/8.5.0" {
		t.Errorf("spooled mint decodes as %+v", e)
	}
	if !evs[1].Time.Equal(vnow) || !evs[1].Token.IssuedAt.Equal(vnow) {
		t.Errorf("a mint without issued_at is dated now: %+v", evs[1])
	}

	for _, c := range []struct {
		q    api.VerifyRequest
		want mint.Verdict
	}{
		{api.VerifyRequest{TokenID: "tok-a", KeyID: "k1"}, mint.Known},
		{api.VerifyRequest{TokenID: "tok-b", KeyID: "k1", IssuedAt: vnow}, mint.Known},
		{api.VerifyRequest{TokenID: "tok-forged", KeyID: "k1", IssuedAt: vnow}, mint.NeverMinted},
		{api.VerifyRequest{TokenID: "tok-a", KeyID: "k1", Country: "NL", UserAgent: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"}, mint.Hijacked},
	} {
		if a := f.verify(t, c.q); a.Verdict != c.want || a.Allow != c.want.Allowed() {
			t.Errorf("%+v: %+v, want %s", c.q, a, c.want)
		}
	}
}

func TestMintedNotDurableNotRegistered(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{}, nil)
	f.reg.Add(mint.Mint{TokenID: "earlier", At: vnow.Add(-time.Hour)}) // coverage
	f.failing = api.ErrUnavailable
	code, hdr, b := f.do(t, http.MethodPost, "/v1/tokens/minted", "", api.MintBatch{Mints: []api.MintRequest{{TokenID: "tok-a", IssuedAt: vnow}}}, nil)
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("spool down: %d %s", code, b)
	}
	if a := f.verify(t, api.VerifyRequest{TokenID: "tok-a", IssuedAt: vnow}); a.Verdict != mint.NeverMinted {
		t.Errorf("a mint not stored durably was registered: %+v", a)
	}
	f.failing = nil
	for _, bad := range []string{
		`{"mints":[]}`,
		`{"mints":[{"key_id":"k1"}]}`,
		`{"mints":[{"token_id":"t","source_ip":"not an ip"}]}`,
		`{"mints":[{"token_id":"t","country":"Korea"}]}`,
		`{"mints":[{"token_id":"t","issued_at":"2026-06-01T12:00:00Z","expires_at":"2026-06-01T11:00:00Z"}]}`,
		`{"mints":[{"token_id":"t"}],"extra":1}`,
		`{"mints":[{"token_id":"ok"},{"token_id":""}]}`,
	} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/tokens/minted", strings.NewReader(bad))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", bad, resp.StatusCode)
		}
	}
	if len(f.spooled) != 0 || f.reg.Len() != 1 {
		t.Errorf("rejected batches left %d spooled, %d registered", len(f.spooled), f.reg.Len())
	}
}

func jwt(hdr, payload string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(hdr)) + "." + e([]byte(payload)) + ".c2ln"
}

func TestAuthRequest(t *testing.T) {
	var refused []string
	f := newVerifyFixture(t, api.VerifyOptions{OnRefuse: func(q mint.Query, a mint.Answer) {
		refused = append(refused, q.TokenID+":"+string(a.Verdict))
	}}, nil)
	f.reg.Observe(&event.Event{Time: vnow.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	f.reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: vnow.Add(-time.Hour)})
	for _, c := range []struct {
		name    string
		hdr     map[string]string
		code    int
		verdict string
	}{
		{"headers, minted", map[string]string{api.HeaderTokenID: "tok-a", api.HeaderTokenKeyID: "k1"}, 204, "known"},
		{"headers, forged", map[string]string{api.HeaderTokenID: "tok-f", api.HeaderTokenKeyID: "k1", api.HeaderTokenIssuedAt: "1780315200"}, 403, "never_minted"},
		{"jwt, minted", map[string]string{api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"alg":"RS256","kid":"k1"}`, `{"jti":"tok-a","iat":1780311600}`)}, 204, "known"},
		{"jwt, unknown key", map[string]string{api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"kid":"k9"}`, `{"jti":"tok-a"}`)}, 403, "unknown_key"},
		{"jwt, forged", map[string]string{api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"tok-z","iat":1780315200}`)}, 403, "never_minted"},
		{"no token", nil, 401, "no_token"},
		{"not a jwt", map[string]string{api.HeaderOriginalAuthorization: "Basic dXNlcjpwdw=="}, 401, "no_token"},
		{"bad address is no context", map[string]string{api.HeaderTokenID: "tok-a", api.HeaderRealIP: "nope"}, 204, "known"},
		// nginx's subrequest carries the client's own headers: a forger
		// sends a live token's id in X-Token-Id beside the forged JWT the
		// upstream will accept. The JWT is what is served, so it is what
		// is judged.
		{"client's X-Token-Id beside a forged jwt", map[string]string{api.HeaderTokenID: "tok-a", api.HeaderTokenKeyID: "k1", api.HeaderTokenIssuedAt: "1780311600",
			api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"tok-y","iat":1780315200}`)}, 403, "never_minted"},
		// A forged JWT without a jti beside the client's X-Token-Id of a
		// live token: unreadable, refused — never judged by the headers.
		{"client's X-Token-Id beside a jwt without jti", map[string]string{api.HeaderTokenID: "tok-a", api.HeaderTokenKeyID: "k1",
			api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"kid":"k1"}`, `{"sub":"victim"}`)}, 401, "unreadable_token"},
	} {
		code, h, b := f.do(t, http.MethodGet, "/v1/verify/auth-request", "", nil, c.hdr)
		if code != c.code || h.Get(api.HeaderVerdict) != c.verdict {
			t.Errorf("%s: %d %s (%s), want %d %s", c.name, code, h.Get(api.HeaderVerdict), b, c.code, c.verdict)
		}
		// A refusal says why, as POST /v1/verify's reasons; nothing else does.
		if reasons := h.Values(api.HeaderReason); (code == 403) != (len(reasons) > 0) {
			t.Errorf("%s: %d with reasons %q", c.name, code, reasons)
		}
	}
	// Every 403 was reported, nothing else.
	if want := []string{"tok-f:never_minted", "tok-a:unknown_key", "tok-z:never_minted", "tok-y:never_minted"}; strings.Join(refused, " ") != strings.Join(want, " ") {
		t.Errorf("refusals reported %v, want %v", refused, want)
	}
}

func TestVerifyRateLimited(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{Rate: 0.001, Burst: 2}, nil)
	var codes []int
	for range 3 {
		code, _, _ := f.do(t, http.MethodPost, "/v1/verify", "", api.VerifyRequest{TokenID: "x"}, nil)
		codes = append(codes, code)
	}
	code, _, _ := f.do(t, http.MethodGet, "/v1/verify/auth-request", "", nil, map[string]string{api.HeaderTokenID: "x"})
	codes = append(codes, code)
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 || codes[3] != 429 {
		t.Errorf("codes %v, want 200 200 429 429", codes)
	}
}

// roleTokens opens a store holding one token of each role; it returns
// the tokens and their ids by role.
func roleTokens(t *testing.T) (*store.Store, map[auth.Role]string, map[auth.Role]string) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	tokens, ids := map[auth.Role]string{}, map[auth.Role]string{}
	for _, r := range []auth.Role{auth.RoleIngest, auth.RoleMint, auth.RoleVerify, auth.RoleAnalyst, auth.RoleAdmin} {
		tok, rec, err := auth.CreateToken(ctx, st, r, string(r), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tokens[r], ids[r] = tok, rec.ID
	}
	return st, tokens, ids
}

func TestVerifyRole(t *testing.T) {
	st, tokens, _ := roleTokens(t)
	authn := auth.New(auth.Options{Store: st})
	f := newVerifyFixture(t, api.VerifyOptions{}, authn)
	// During the deprecation (verify.ingest_may_mint, on by default in
	// serve) ingest tokens may still register mints, warned.
	legacy := newVerifyFixture(t, api.VerifyOptions{IngestMayMint: true}, authn)
	mintBody := api.MintBatch{Mints: []api.MintRequest{{TokenID: "t1"}}}
	for _, c := range []struct {
		role                          auth.Role
		verify, mint, legacy, analyst int
	}{
		{auth.RoleVerify, 200, 403, 403, 403},
		{auth.RoleIngest, 403, 403, 200, 403},
		{auth.RoleMint, 403, 200, 200, 403},
		{auth.RoleAnalyst, 403, 403, 403, 200},
		{auth.RoleAdmin, 200, 200, 200, 200},
		{"", 401, 401, 401, 401},
	} {
		tok := tokens[c.role]
		if code, _, b := f.do(t, http.MethodPost, "/v1/verify", tok, api.VerifyRequest{TokenID: "t1"}, nil); code != c.verify {
			t.Errorf("%s: verify %d %s", c.role, code, b)
		}
		code, _, b := f.do(t, http.MethodPost, "/v1/tokens/minted", tok, mintBody, nil)
		if code != c.mint {
			t.Errorf("%s: minted %d %s", c.role, code, b)
		}
		if code == 403 && !strings.Contains(string(b), "role mint") {
			t.Errorf("%s: the refusal does not name the mint role: %s", c.role, b)
		}
		code, h, b := legacy.do(t, http.MethodPost, "/v1/tokens/minted", tok, mintBody, nil)
		if code != c.legacy {
			t.Errorf("%s: minted (ingest may mint) %d %s", c.role, code, b)
		}
		if w := h.Get("Warning"); (c.role == auth.RoleIngest) != strings.Contains(w, "role mint") {
			t.Errorf("%s: Warning %q", c.role, w)
		}
		if code, _, b := f.do(t, http.MethodPost, "/v1/events", tok, nil, nil); c.role == auth.RoleMint && code != 403 {
			t.Errorf("mint token posted events: %d %s", code, b)
		}
		if code, _, b := f.do(t, http.MethodGet, "/v1/alerts", tok, nil, nil); code != c.analyst {
			t.Errorf("%s: alerts %d %s", c.role, code, b)
		}
	}
}

// The grace's allowance is per source address as the caller gives it.
func TestVerifyGracePerSource(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{}, nil, mint.Options{Grace: mint.Grace{Skew: 10 * time.Second, PerSource: 1, PerKey: 10}})
	f.reg.Add(mint.Mint{TokenID: "earlier", KeyID: "k1", At: vnow.Add(-time.Hour)})
	for _, c := range []struct {
		id, ip string
		want   mint.Verdict
	}{
		{"new-1", "198.51.100.1", mint.Graced},
		{"new-2", "198.51.100.1", mint.NeverMinted},
		{"new-3", "198.51.100.2", mint.Graced},
	} {
		if a := f.verify(t, api.VerifyRequest{TokenID: c.id, KeyID: "k1", IssuedAt: vnow, SourceIP: c.ip}); a.Verdict != c.want {
			t.Errorf("%s from %s: %+v, want %s", c.id, c.ip, a, c.want)
		}
	}
}

func TestVerifyBatch(t *testing.T) {
	var refused []string
	f := newVerifyFixture(t, api.VerifyOptions{Rate: 0.001, Burst: 6, OnRefuse: func(q mint.Query, a mint.Answer) {
		refused = append(refused, q.TokenID+":"+string(a.Verdict)+"@"+q.Source)
	}}, nil)
	f.reg.Observe(&event.Event{Time: vnow.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	f.reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: vnow.Add(-time.Hour)})
	post := func(body string) (int, string) {
		resp, err := http.Post(f.srv.URL+"/v1/verify/batch", "text/tab-separated-values", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		name, body string
		code       int
		answer     string // the whole body when 200, else a part of it
	}{
		{"answers in order; a bad address is no context", "tok-a\tk1\t\t203.0.113.7\tcurl/8\ntok-f\tk1\t1780315200\t203.0.113.8\nx\tk9\t\tnot-an-ip\n", 200,
			"+known\n-never_minted\tno live mint of this token id is registered\n-unknown_key\tkey \"k9\" is not in the key inventory\n"},
		{"no final line break", "tok-a\tk1", 200, "+known\n"},
		{"a malformed line refuses the batch", "tok-a\tk1\ntok-b\tk1\tyesterday\n", 400, "check 2: issued_at"},
		{"empty", "", 400, "1 to 1024 checks"},
		{"beyond the rate limit (6 spent: the malformed batch counted too)", "tok-a\n", 429, "rate limit"},
	} {
		code, b := post(c.body)
		if code != c.code || (code == 200 && b != c.answer) || (code != 200 && !strings.Contains(b, c.answer)) {
			t.Errorf("%s: %d %q, want %d %q", c.name, code, b, c.code, c.answer)
		}
	}
	if want := "tok-f:never_minted@203.0.113.8 x:unknown_key@"; strings.Join(refused, " ") != want {
		t.Errorf("refusals reported %q, want %q", strings.Join(refused, " "), want)
	}
	if code, b := post(strings.Repeat("tok-a\n", api.MaxVerifyBatch+1)); code != 400 {
		t.Errorf("%d checks: %d %s", api.MaxVerifyBatch+1, code, b)
	}
}

// TestVerifyUserBinding: every form of the check reads the user the token
// is presented for (the JWT's sub; X-Token-User, user_id, the batch's
// sixth field for opaque tokens) and refuses a genuine token id presented
// for another user; a genuine token presented for its own user passes.
func TestVerifyUserBinding(t *testing.T) {
	var refused []string
	f := newVerifyFixture(t, api.VerifyOptions{OnRefuse: func(q mint.Query, a mint.Answer) {
		refused = append(refused, q.TokenID+":"+string(a.Verdict)+":"+q.User)
	}}, nil)
	f.reg.Observe(&event.Event{Time: vnow.Add(-time.Hour), Dataset: event.DatasetKeys, Key: event.Key{ID: "k1"}})
	// The forger's own genuine login, registered with its user.
	code, _, b := f.do(t, http.MethodPost, "/v1/tokens/minted", "", api.MintBatch{Mints: []api.MintRequest{
		{TokenID: "tok-own", KeyID: "k1", IssuedAt: vnow.Add(-time.Minute), ExpiresAt: vnow.Add(time.Hour), UserID: "c:1042"},
		{TokenID: "tok-unbound", KeyID: "k1", IssuedAt: vnow.Add(-time.Minute)},
	}}, nil)
	if code != http.StatusOK {
		t.Fatalf("register: %d %s", code, b)
	}
	sub := func(id, user string) string {
		return "Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"`+id+`","iat":1780315140,"sub":"`+user+`"}`)
	}
	for _, c := range []struct {
		name    string
		hdr     map[string]string
		code    int
		verdict string
	}{
		{"jwt, own sub (twin)", map[string]string{api.HeaderOriginalAuthorization: sub("tok-own", "c:1042")}, 204, "known"},
		{"jwt, victim's sub", map[string]string{api.HeaderOriginalAuthorization: sub("tok-own", "c:7")}, 403, "user_mismatch"},
		{"jwt, sub in another case", map[string]string{api.HeaderOriginalAuthorization: sub("tok-own", "C:1042")}, 403, "user_mismatch"},
		{"jwt without sub: unbound", map[string]string{api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"tok-own"}`)}, 204, "known"},
		{"jwt, unbound mint", map[string]string{api.HeaderOriginalAuthorization: sub("tok-unbound", "c:7")}, 204, "known"},
		{"headers, own user (twin)", map[string]string{api.HeaderTokenID: "tok-own", api.HeaderTokenKeyID: "k1", api.HeaderTokenUser: "c:1042"}, 204, "known"},
		{"headers, victim", map[string]string{api.HeaderTokenID: "tok-own", api.HeaderTokenKeyID: "k1", api.HeaderTokenUser: "c:7"}, 403, "user_mismatch"},
		// The JWT is what the upstream serves: the client's own
		// X-Token-User beside it is not read.
		{"client's X-Token-User beside a jwt", map[string]string{api.HeaderOriginalAuthorization: sub("tok-own", "c:8"), api.HeaderTokenUser: "c:1042"}, 403, "user_mismatch"},
	} {
		code, h, b := f.do(t, http.MethodGet, "/v1/verify/auth-request", "", nil, c.hdr)
		if code != c.code || h.Get(api.HeaderVerdict) != c.verdict {
			t.Errorf("auth-request, %s: %d %s (%s), want %d %s", c.name, code, h.Get(api.HeaderVerdict), b, c.code, c.verdict)
		}
	}
	for _, c := range []struct {
		user string
		want mint.Verdict
	}{{"c:1042", mint.Known}, {"c:7", mint.UserMismatch}, {"", mint.Known}} {
		if a := f.verify(t, api.VerifyRequest{TokenID: "tok-own", KeyID: "k1", UserID: c.user}); a.Verdict != c.want || a.Allow != c.want.Allowed() {
			t.Errorf("POST /v1/verify for %q: %+v, want %s", c.user, a, c.want)
		}
	}
	resp, err := http.Post(f.srv.URL+"/v1/verify/batch", "text/tab-separated-values",
		strings.NewReader("tok-own\tk1\t\t\t\tc:1042\ntok-own\tk1\t\t203.0.113.9\tcurl/8\tc:9\ntok-own\tk1\t\t203.0.113.9\tcurl/8\n"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := "+known\n-user_mismatch\tminted for another user than the one it is presented for\n+known\n"; resp.StatusCode != 200 || string(body) != want {
		t.Errorf("batch: %d %q, want %q", resp.StatusCode, body, want)
	}
	// Each refusal is reported with the user it was presented for: the
	// refusal event carries it to the detector.
	want := []string{"tok-own:user_mismatch:c:7", "tok-own:user_mismatch:C:1042", "tok-own:user_mismatch:c:7", "tok-own:user_mismatch:c:8",
		"tok-own:user_mismatch:c:7", "tok-own:user_mismatch:c:9"}
	if strings.Join(refused, " ") != strings.Join(want, " ") {
		t.Errorf("refusals reported %v, want %v", refused, want)
	}
}

// With mint.Options.RequireUser, a check presenting no user for a bound
// token is refused (user_missing); an unbound mint still passes.
func TestVerifyRequireUser(t *testing.T) {
	f := newVerifyFixture(t, api.VerifyOptions{}, nil, mint.Options{MaxLifetime: 12 * time.Hour, ClockSkew: time.Minute, RequireUser: true})
	f.reg.Add(mint.Mint{TokenID: "tok-own", KeyID: "k1", At: vnow.Add(-time.Minute), UserID: "c:1042"})
	f.reg.Add(mint.Mint{TokenID: "tok-unbound", KeyID: "k1", At: vnow.Add(-time.Minute)})
	for _, c := range []struct {
		hdr     map[string]string
		code    int
		verdict string
	}{
		{map[string]string{api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"tok-own"}`)}, 403, "user_missing"},
		{map[string]string{api.HeaderOriginalAuthorization: "Bearer " + jwt(`{"kid":"k1"}`, `{"jti":"tok-own","sub":"c:1042"}`)}, 204, "known"},
		{map[string]string{api.HeaderTokenID: "tok-unbound", api.HeaderTokenKeyID: "k1"}, 204, "known"},
	} {
		code, h, _ := f.do(t, http.MethodGet, "/v1/verify/auth-request", "", nil, c.hdr)
		if code != c.code || h.Get(api.HeaderVerdict) != c.verdict {
			t.Errorf("%v: %d %s, want %d %s", c.hdr, code, h.Get(api.HeaderVerdict), c.code, c.verdict)
		}
	}
}

// The verify rate limit is per caller: one API token spending its
// allowance does not refuse another's checks.
func TestVerifyRateLimitPerCaller(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var toks []string
	for _, name := range []string{"edge a", "edge b"} {
		tok, _, err := auth.CreateToken(ctx, st, auth.RoleVerify, name, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		toks = append(toks, tok)
	}
	f := newVerifyFixture(t, api.VerifyOptions{Rate: 0.001, Burst: 2}, auth.New(auth.Options{Store: st}))
	var codes []int
	for _, tok := range []string{toks[0], toks[0], toks[0], toks[1]} {
		code, _, _ := f.do(t, http.MethodPost, "/v1/verify", tok, api.VerifyRequest{TokenID: "x"}, nil)
		codes = append(codes, code)
	}
	// The second caller's batch of two fits its own burst, a third check does not.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/verify/batch", strings.NewReader("x\n"))
	req.Header.Set("Authorization", "Bearer "+toks[1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	codes = append(codes, resp.StatusCode)
	code, _, _ := f.do(t, http.MethodGet, "/v1/verify/auth-request", toks[1], nil, map[string]string{api.HeaderTokenID: "x"})
	codes = append(codes, code)
	if fmt.Sprint(codes) != "[200 200 429 200 200 429]" {
		t.Errorf("codes %v, want [200 200 429 200 200 429]", codes)
	}
}
