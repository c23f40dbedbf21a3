package cli_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/drill"
)

// drill run asks the server for every drill and runs each; a failed one
// is exit 1 with its reason printed.
func TestDrillRun(t *testing.T) {
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = append(auth, r.Header.Get("Authorization"))
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/drills":
			w.Write([]byte(`{"drills":[{"name":"canary-read"},{"name":"forged-token"}]}`))
		case r.URL.Path == "/v1/drills/canary-read/run":
			json.NewEncoder(w).Encode(drill.Result{Drill: "canary-read", Run: "canary-read-1", Status: drill.Passed, TimeToAlert: 12 * time.Millisecond, Alerts: []string{"al-1"},
				Actions: []drill.PlannedAction{{Alert: "al-1", Kind: "block_source", State: "dry_run"}, {Alert: "al-1", Kind: "notify", State: "skipped"}}})
		case r.URL.Path == "/v1/drills/forged-token/run":
			json.NewEncoder(w).Encode(drill.Result{Drill: "forged-token", Status: drill.Failed, Reason: "no alert about the drill's entity within 2m0s; expected detector token_provenance"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	code, stdout, stderr := run(t, "drill", "run", "--url", srv.URL, "--token", "tok")
	if code != 1 || !strings.Contains(stderr, "1 of 2 drills failed") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"canary-read", "passed", "12ms", "block_source,notify", "canary-read-1", "forged-token", "failed", "expected detector token_provenance"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if auth[0] != "Bearer tok" {
		t.Errorf("Authorization %q", auth[0])
	}
	code, stdout, _ = run(t, "drill", "run", "canary-read", "--url", srv.URL, "-o", "json")
	var res drill.Result
	if code != 0 || json.Unmarshal([]byte(stdout), &res) != nil || res.Status != drill.Passed {
		t.Fatalf("exit %d: %s", code, stdout)
	}
}

// drill run NAME with a name the server does not run is a usage error
// (exit 2) that lists the drills it runs; a server that runs none says so.
// A drill that failed is exit 1, a server that cannot be reached too.
func TestDrillRunUnknown(t *testing.T) {
	drills := `{"drills":[{"name":"canary-read"},{"name":"forged-token"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/v1/drills" && drills != "":
			w.Write([]byte(drills))
		case r.URL.Path == "/v1/drills/nosuch/run":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":"unknown drill"}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	code, stdout, stderr := run(t, "drill", "run", "nosuch", "--url", srv.URL)
	if want := "haechi drill: unknown drill \"nosuch\"; the server's drills: canary-read, forged-token\n"; code != 2 || stderr != want || stdout != "" {
		t.Errorf("unknown drill: exit %d, stderr %q, want exit 2 and %q", code, stderr, want)
	}
	drills = ""
	if code, _, stderr = run(t, "drill", "run", "nosuch", "--url", srv.URL); code != 2 || !strings.Contains(stderr, "runs no drills") {
		t.Errorf("no drills: exit %d %q, want 2 saying the server runs no drills", code, stderr)
	}
	url := srv.URL
	srv.Close()
	if code, _, stderr = run(t, "drill", "run", "nosuch", "--url", url); code != 1 {
		t.Errorf("server gone: exit %d %q, want 1", code, stderr)
	}
}

// drill show prints a stored run: its verdict, then its alerts, findings
// and actions; -o json passes the server's answer through.
func TestDrillShow(t *testing.T) {
	const answer = `{"run":"token-hijack-1","drill":"token-hijack","kind":"token_hijack","started":"2026-12-07T00:35:32Z","status":"failed",` +
		`"reason":"expected action revoke_token, planned: notify","entity":"token:haechi-drill-token-hijack-1-token",` +
		`"detail":{"alerts":[{"id":"al-9","severity":"high","entity":{"kind":"token","id":"haechi-drill-token-hijack-1-token"},"title":"Token used from a new network",` +
		`"findings":[{"detector":"token_binding","kind":"token_binding_hosting"}]}],` +
		`"findings":[{"detector":"token_binding","kind":"token_binding_hosting","entity":{"kind":"token","id":"haechi-drill-token-hijack-1-token"},"score":70}],` +
		`"actions":[{"alert":"al-9","kind":"notify","target":"token:haechi-drill-token-hijack-1-token","playbook":"token_hijack","state":"skipped","reason":"no receiver configured (notify)"}]}}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/drills/runs/token-hijack-1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	code, stdout, stderr := run(t, "drill", "show", "token-hijack-1", "--url", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"token-hijack (token_hijack)", "failed", "expected action revoke_token, planned: notify",
		"al-9", "token_binding", "token_binding_hosting", "notify", "token_hijack", "skipped", "no receiver configured (notify)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if code, stdout, _ = run(t, "drill", "show", "token-hijack-1", "--url", srv.URL, "-o", "json"); code != 0 || strings.TrimSpace(stdout) != answer {
		t.Errorf("-o json: exit %d %s", code, stdout)
	}
	if code, _, stderr = run(t, "drill", "show", "nope", "--url", srv.URL); code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("unknown run: exit %d %q", code, stderr)
	}
}
