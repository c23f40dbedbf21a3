package gateway_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/gateway"
)

func TestBatchLines(t *testing.T) {
	iat := time.Unix(1780311600, 0).UTC()
	for _, c := range []struct {
		name string
		in   gateway.Check
		line string
		back gateway.Check // what parsing the line gives
	}{
		{"full", gateway.Check{Token: gateway.Token{ID: "tok-a", KeyID: "k1", IssuedAt: iat}, ClientIP: "198.51.100.9", UserAgent: "python-requests/2.32"},
			"tok-a\tk1\t1780311600\t198.51.100.9\tpython-requests/2.32\n",
			gateway.Check{Token: gateway.Token{ID: "tok-a", KeyID: "k1", IssuedAt: iat}, ClientIP: "198.51.100.9", UserAgent: "python-requests/2.32"}},
		{"token only", gateway.Check{Token: gateway.Token{ID: "tok-a"}}, "tok-a\t\t\t\t\n", gateway.Check{Token: gateway.Token{ID: "tok-a"}}},
		{"sub-second issue time", gateway.Check{Token: gateway.Token{ID: "t", IssuedAt: iat.Add(5 * time.Millisecond)}},
			"t\t\t2026-06-01T11:00:00.005Z\t\t\n", gateway.Check{Token: gateway.Token{ID: "t", IssuedAt: iat.Add(5 * time.Millisecond)}}},
		{"with a user (the optional sixth field)", gateway.Check{Token: gateway.Token{ID: "tok-a", KeyID: "k1", IssuedAt: iat, User: "c:1042"}, ClientIP: "198.51.100.9", UserAgent: "curl/8"},
			"tok-a\tk1\t1780311600\t198.51.100.9\tcurl/8\tc:1042\n",
			gateway.Check{Token: gateway.Token{ID: "tok-a", KeyID: "k1", IssuedAt: iat, User: "c:1042"}, ClientIP: "198.51.100.9", UserAgent: "curl/8"}},
		{"a user without the other fields", gateway.Check{Token: gateway.Token{ID: "t", User: "Auth0|AbC"}}, "t\t\t\t\t\tAuth0|AbC\n",
			gateway.Check{Token: gateway.Token{ID: "t", User: "Auth0|AbC"}}},
		{"a tab in the user agent becomes a space", gateway.Check{Token: gateway.Token{ID: "t"}, UserAgent: "a\tb\r\nc"},
			"t\t\t\t\ta b  c\n", gateway.Check{Token: gateway.Token{ID: "t"}, UserAgent: "a b  c"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := string(gateway.AppendCheck(nil, c.in))
			if got != c.line {
				t.Fatalf("line %q, want %q", got, c.line)
			}
			back, err := gateway.ParseCheck([]byte(strings.TrimSuffix(got, "\n")))
			if err != nil || back != c.back {
				t.Errorf("parsed %+v %v, want %+v", back, err, c.back)
			}
		})
	}
	for _, bad := range []string{"", "\tk1", "a\tb\tc\td\te\tf\tg", "a\tb\tc\td\te\tf\x01", "a\tb\tyesterday", "a\x01b", strings.Repeat("x", gateway.MaxBatchLine+1)} {
		if c, err := gateway.ParseCheck([]byte(bad)); err == nil {
			t.Errorf("%.40q: parsed %+v, want an error", bad, c)
		}
	}
	// A line of the five fields before the user existed reads as before,
	// with no user.
	if c, err := gateway.ParseCheck([]byte("tok-a\tk1\t1780311600\t198.51.100.9\tcurl/8")); err != nil || c.Token.User != "" || c.UserAgent != "curl/8" {
		t.Errorf("five-field line: %+v %v", c, err)
	}
	// Short lines: trailing fields left out.
	if c, err := gateway.ParseCheck([]byte("tok-a\tk1")); err != nil || c.Token.ID != "tok-a" || c.Token.KeyID != "k1" {
		t.Errorf("short line: %+v %v", c, err)
	}
	if gateway.Batchable(gateway.Check{Token: gateway.Token{ID: "a\tb"}}) || gateway.Batchable(gateway.Check{}) {
		t.Error("a token id with a tab, or none, is batchable")
	}
	if gateway.Batchable(gateway.Check{Token: gateway.Token{ID: "a", User: "c:1\n"}}) {
		t.Error("a user with a line break is batchable")
	}
}

func TestBatchAnswers(t *testing.T) {
	for _, a := range []gateway.Answer{
		{Verdict: "known", Allow: true},
		{Verdict: "hijacked", Reasons: []string{"minted for a client in KR, presented from NL", "minted for Safari on iOS, presented by HTTP library"}},
		{Verdict: "never_minted", Reasons: []string{`no live mint of "x\ty"`}},
	} {
		line := gateway.AppendAnswer(nil, a)
		got, ok := gateway.ParseAnswer(line[:len(line)-1])
		want := a
		for i, r := range want.Reasons {
			want.Reasons[i] = strings.ReplaceAll(r, "\t", " ")
		}
		if !ok || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q → %+v %v, want %+v", line, got, ok, want)
		}
	}
	for _, bad := range []string{"", "+", "known", "*known", "-\treason"} {
		if a, ok := gateway.ParseAnswer([]byte(bad)); ok {
			t.Errorf("%q: parsed %+v", bad, a)
		}
	}
}

func FuzzParseCheck(f *testing.F) {
	f.Add("tok-a\tk1\t1780311600\t198.51.100.9\tpython-requests/2.32")
	f.Add("t\t\t2026-06-01T11:00:00.005Z")
	f.Add("\t\t\t\t\t")
	f.Add("tok-a\tk1\t1780311600\t198.51.100.9\tcurl/8\tc:1042")
	f.Add("t\t\t\t\t\tauth0|5f1a")
	f.Add("t\t\t\t\t\t\t")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := gateway.ParseCheck([]byte(s))
		if err != nil {
			return
		}
		if !gateway.Batchable(c) {
			t.Fatalf("parsed an unsendable check %+v", c)
		}
		// What was read is sent back the same way.
		line := gateway.AppendCheck(nil, c)
		back, err := gateway.ParseCheck(line[:len(line)-1])
		if err != nil || back.Token.ID != c.Token.ID || back.Token.KeyID != c.Token.KeyID || !back.Token.IssuedAt.Equal(c.Token.IssuedAt) ||
			back.ClientIP != c.ClientIP || back.UserAgent != c.UserAgent || back.Token.User != c.Token.User {
			t.Fatalf("%q → %+v → %q → %+v %v", s, c, line, back, err)
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	f.Add("+known")
	f.Add("-hijacked\ta\tb")
	f.Fuzz(func(t *testing.T, s string) {
		a, ok := gateway.ParseAnswer([]byte(s))
		if ok && a.Verdict == "" {
			t.Fatalf("%q: ok without a verdict", s)
		}
	})
}

// A batching Checker gives every check the answer a single check gets,
// under concurrency (the checks share requests), and a refused batch
// (here 401: a wrong API token) fails every check in it.
func TestBatchingChecker(t *testing.T) {
	srv := haechi(t, nil)
	single, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: 5 * time.Second, Streams: -1})
	if err != nil {
		t.Fatal(err)
	}
	batched, err := gateway.New(gateway.Options{URL: srv.URL, Timeout: 5 * time.Second, MaxBatch: 64, Senders: 2, Streams: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer batched.Close()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	var wg sync.WaitGroup
	errs := make(chan error, 2000)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				id := fmt.Sprintf("tok-%d", (w*100+i)*7)
				if i%3 == 0 {
					id = fmt.Sprintf("forged-%d-%d", w, i)
				}
				tok := gateway.Token{ID: id, KeyID: "k1", IssuedAt: t0.Add(-time.Hour)}
				a, err := batched.Check(t.Context(), req, tok)
				b, err2 := single.Check(t.Context(), req, tok)
				if err != nil || err2 != nil || a.Verdict != b.Verdict || a.Allow != b.Allow {
					errs <- fmt.Errorf("%s: batched %+v %v, single %+v %v", id, a, err, b, err2)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	refused := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
	}))
	defer refused.Close()
	chk, err := gateway.New(gateway.Options{URL: refused.URL, Timeout: time.Second, MaxBatch: 8, Streams: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer chk.Close()
	if _, err := chk.Check(t.Context(), req, gateway.Token{ID: "tok-1"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("refused batch: %v", err)
	}
}
