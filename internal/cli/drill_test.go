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
			json.NewEncoder(w).Encode(drill.Result{Drill: "canary-read", Status: drill.Passed, TimeToAlert: 12 * time.Millisecond, Alerts: []string{"al-1"}})
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
	for _, want := range []string{"canary-read", "passed", "12ms", "al-1", "forged-token", "failed", "expected detector token_provenance"} {
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
	if code, _, stderr = run(t, "drill", "run", "nope", "--url", srv.URL); code != 1 || !strings.Contains(stderr, "404") {
		t.Errorf("unknown drill: exit %d %q", code, stderr)
	}
}
