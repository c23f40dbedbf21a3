package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/auth"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/console"
	"github.com/haechi-sec/haechi/internal/eval"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// chromium finds a Chromium binary: $HAECHI_CHROMIUM, or chromium,
// chromium-browser, google-chrome on PATH.
func chromium() string {
	if p := os.Getenv("HAECHI_CHROMIUM"); p != "" {
		return p
	}
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	return ""
}

// TestBrowser drives the console in Debian's Chromium against a live
// serve fed with simulated traffic: log in, open the Incidents page (a
// new incident appears live), open an attack's incident (timeline, entity
// graph, scope) and record its verdict, open the newest critical
// alert, read its explanation and findings, approve a pending action,
// open the entity page's chart, export a scope, and see a drill's result
// on the overview. A screenshot of each step goes to $HAECHI_SCREENSHOTS
// (or the test's temporary directory).
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: skipped under -short")
	}
	bin := chromium()
	if bin == "" {
		t.Skip("browser test: no chromium binary found (apt-get install -y chromium, or set HAECHI_CHROMIUM); .ci/run installs it")
	}
	shots := os.Getenv("HAECHI_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", shots)

	ctx, cancel := context.WithTimeout(context.Background(), 110*time.Second)
	defer cancel()
	srv := startServe(t, ctx)
	simOpts := feedDemo(t, ctx, srv)
	critical, scoped, pending := waitForData(t, ctx, srv)
	saveScorecard(t, ctx, srv, simOpts)

	dir := t.TempDir()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(dir), chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// The first Run starts the browser, bound to bctx (a step's timeout
	// below must not end it).
	if err := chromedp.Run(bctx); err != nil {
		t.Fatalf("start chromium (%s): %v", bin, err)
	}
	step := 0
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			step++
			return os.WriteFile(filepath.Join(shots, fmt.Sprintf("%02d-%s.png", step, name)), buf, 0o644)
		})
	}
	fail := func(what string, err error) {
		t.Helper()
		// Show where the browser was.
		var loc, body string
		_ = chromedp.Run(bctx, chromedp.Location(&loc), chromedp.Text("main", &body, chromedp.ByQuery), shot("failed"))
		t.Fatalf("%s: %v\nthe browser is at %s:\n%s", what, err, loc, body)
	}
	run := func(what string, actions ...chromedp.Action) {
		t.Helper()
		sctx, cancel := context.WithTimeout(bctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Run(sctx, actions...); err != nil {
			fail(what, err)
		}
	}
	// read runs actions that only read the page, again (up to three times)
	// when the page replaced a node between finding and reading it: the
	// live pages re-render as alerts arrive, and chromedp then answers
	// "No node with given id found".
	read := func(what string, actions ...chromedp.Action) {
		t.Helper()
		for attempt := 1; ; attempt++ {
			sctx, cancel := context.WithTimeout(bctx, 20*time.Second)
			err := chromedp.Run(sctx, actions...)
			cancel()
			if err == nil {
				return
			}
			if attempt == 3 || !strings.Contains(err.Error(), "No node with given id") {
				fail(what, err)
			}
		}
	}

	// 1. Log in.
	var title string
	run("open the console", chromedp.Navigate(srv.base+"/"), chromedp.WaitVisible("#token", chromedp.ByID), shot("login"))
	run("log in", chromedp.SendKeys("#token", srv.analyst, chromedp.ByID), chromedp.Click("#login", chromedp.ByID),
		chromedp.WaitVisible("#live-alerts", chromedp.ByID), chromedp.Title(&title), shot("overview"))
	if !strings.HasPrefix(title, "Overview") {
		t.Fatalf("after login the title is %q, want the overview", title)
	}

	// A new alert appears on the open overview without a reload: a canary
	// record is read now.
	canary := fmt.Sprintf(`{"@timestamp":%q,"event":{"dataset":"gateway.access","action":"customer.read","outcome":"success"},`+
		`"user":{"id":"e:live-check"},"source":{"ip":"198.51.100.77"},"url":{"path":"/customers/70000003"},`+
		`"http":{"request":{"method":"GET"},"response":{"status_code":200}},"records":{"type":"customer","ids":["70000003"],"fields":["name","email"]}}`+"\n",
		time.Now().UTC().Format(time.RFC3339Nano))
	postEvents(t, ctx, srv, []byte(canary))
	var liveRow string
	run("see a new alert live", chromedp.WaitVisible(`#live-alerts tr[data-alert]`, chromedp.ByQuery),
		chromedp.Text(`#live-alerts tr[data-alert]`, &liveRow, chromedp.ByQuery), shot("live-alert"))
	if !strings.Contains(liveRow, "e:live-check") && !strings.Contains(liveRow, "198.51.100.77") {
		t.Errorf("the live row is %q, want the canary alert", liveRow)
	}

	// 2. Incidents come first: the Incidents page lists the attacks, a new
	// incident appears on it live, and an incident's page has its
	// timeline, entity graph and scope, and takes a verdict.
	var incs struct{ Incidents []store.Incident }
	getJSON(t, ctx, srv, "/v1/incidents?severity=critical", &incs)
	if len(incs.Incidents) == 0 {
		t.Fatal("no critical incident")
	}
	// The attack with the most alerts (the canary read above is one alert).
	attack := incs.Incidents[0]
	for _, in := range incs.Incidents {
		if in.AlertCount > attack.AlertCount {
			attack = in
		}
	}
	var navFirst string
	var rows int
	run("open the incidents page", chromedp.Click(`nav a[href="/incidents"]`, chromedp.ByQuery),
		chromedp.WaitVisible(`#live-incidents tr[data-incident="`+attack.ID+`"]`, chromedp.ByQuery),
		chromedp.Text("nav a:first-child", &navFirst, chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#live-incidents tr[data-incident]").length`, &rows), shot("incidents"))
	if navFirst != "Incidents" || rows == 0 {
		t.Errorf("the navigation leads with %q; %d incidents listed", navFirst, rows)
	}
	canary2 := strings.ReplaceAll(strings.ReplaceAll(canary, "e:live-check", "e:live-incident"), "198.51.100.77", "198.51.100.78")
	postEvents(t, ctx, srv, []byte(canary2))
	var freshRow string
	read("see a new incident live", chromedp.WaitVisible(`#live-incidents tr.fresh`, chromedp.ByQuery),
		chromedp.Text(`#live-incidents`, &freshRow, chromedp.ByQuery), shot("live-incident"))
	if !strings.Contains(freshRow, "e:live-incident") && !strings.Contains(freshRow, "198.51.100.78") {
		t.Errorf("the incidents page after a new alert shows:\n%s", freshRow)
	}
	var incTitle, scopeTotal string
	var steps, nodes int
	run("open an attack incident", chromedp.Click(`#live-incidents tr[data-incident="`+attack.ID+`"] td:nth-child(3) a`, chromedp.ByQuery),
		chromedp.WaitVisible("#incident-title", chromedp.ByID))
	read("read the attack incident", chromedp.WaitVisible("#incident-title", chromedp.ByID), chromedp.Text("#incident-title", &incTitle, chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll("#timeline li[data-time-kind]").length`, &steps),
		chromedp.Evaluate(`document.querySelectorAll("#graph .graph-node").length`, &nodes),
		chromedp.Evaluate(`(document.getElementById("scope-total") || {}).textContent || ""`, &scopeTotal), shot("incident"))
	if !strings.Contains(incTitle, attack.Title) || steps == 0 || nodes == 0 || scopeTotal == "" {
		t.Errorf("incident page: title %q (want %q), %d timeline steps, %d graph nodes, scope %q", incTitle, attack.Title, steps, nodes, scopeTotal)
	}
	var verdictFlash string
	run("set the incident's verdict", chromedp.Click(`#incident-verdict-choice input[value="true_positive"]`, chromedp.ByQuery),
		chromedp.Click(`#incident-state-choice input[value="contained"]`, chromedp.ByQuery),
		chromedp.Click("#incident-verdict-submit", chromedp.ByID),
		chromedp.WaitVisible(".flash", chromedp.ByQuery), chromedp.Text(".flash", &verdictFlash, chromedp.ByQuery), shot("incident-verdict"))
	var after store.Incident
	getJSON(t, ctx, srv, "/v1/incidents/"+url.PathEscape(attack.ID), &after)
	if !strings.Contains(verdictFlash, "verdict recorded") || after.Verdict != store.VerdictTruePositive || after.State != store.IncidentContained ||
		!strings.Contains(after.VerdictBy, "browser analyst") {
		t.Errorf("after the verdict the page says %q and the incident is %s/%s by %q", verdictFlash, after.State, after.Verdict, after.VerdictBy)
	}

	// 3. The newest critical alert: its explanation and findings.
	var explanation string
	var findings int
	run("open the newest critical alert", chromedp.Navigate(srv.base+"/alerts?severity=critical"),
		chromedp.WaitVisible("#live-alerts tr td a", chromedp.ByQuery),
		chromedp.Click("#live-alerts tr:first-child td:nth-child(3) a", chromedp.ByQuery),
		chromedp.WaitVisible("#explanation", chromedp.ByID),
		chromedp.Text("#explanation", &explanation, chromedp.ByID),
		chromedp.Evaluate(`document.querySelectorAll("#findings .finding").length`, &findings),
		shot("critical-alert"))
	var url0 string
	run("location", chromedp.Location(&url0))
	if !strings.HasSuffix(url0, "/alerts/"+critical.ID) {
		// A critical alert raised since waitForData is newer still.
		if newest := newestCritical(t, ctx, srv); !strings.HasSuffix(url0, "/alerts/"+newest.ID) {
			t.Errorf("opened %s, want the newest critical alert %s", url0, newest.ID)
		}
	}
	if strings.TrimSpace(explanation) == "" || findings == 0 {
		t.Fatalf("alert page: explanation %q, %d findings; want both", explanation, findings)
	}

	// 4. Approve a pending action.
	var flash string
	run("approve a pending action", chromedp.Navigate(srv.base+"/alerts/"+url.PathEscape(pending.AlertID)),
		chromedp.WaitVisible(`button.approve[data-actions~="`+pending.ID+`"]`, chromedp.ByQuery),
		shot("pending-action"),
		chromedp.Click(`button.approve[data-actions~="`+pending.ID+`"]`, chromedp.ByQuery),
		chromedp.WaitVisible(".flash", chromedp.ByQuery), chromedp.Text(".flash", &flash, chromedp.ByQuery), shot("approved"))
	if !strings.Contains(flash, "approved") {
		t.Errorf("after approving, the page says %q", flash)
	}
	if st := actionState(t, ctx, srv, pending.ID); st == store.ActionPendingApproval {
		t.Errorf("action %s is still %s after approval", pending.ID, st)
	}

	// 5. The entity page and its chart: the risk line is drawn (it has a
	// stroke) and has a coloured legend swatch.
	var bars int
	var riskStroke, riskSwatch string
	run("open the entity page", chromedp.Navigate(srv.base+"/alerts/"+url.PathEscape(scoped.ID)),
		chromedp.WaitVisible("#entity-link", chromedp.ByID), chromedp.Click("#entity-link", chromedp.ByID),
		chromedp.WaitVisible("#scores-chart svg.chart", chromedp.ByQuery),
		chromedp.Evaluate(`document.querySelectorAll("#records-chart svg.chart rect:not(.frame), #scores-chart svg.chart circle").length`, &bars),
		chromedp.Evaluate(`(function () { var l = document.querySelector('#scores-chart g.series[data-series="risk at alert"] polyline');
			return l ? getComputedStyle(l).stroke : "no risk line"; })()`, &riskStroke),
		chromedp.Evaluate(`(function () { var li = Array.from(document.querySelectorAll("#scores-chart ul.legend li")).find(function (e) { return e.textContent === "risk at alert"; });
			return li ? getComputedStyle(li.querySelector(".swatch")).backgroundColor : "no legend entry"; })()`, &riskSwatch),
		shot("entity"))
	if bars == 0 {
		t.Errorf("the entity page of %s charts nothing", scoped.Entity)
	}
	if riskStroke == "" || riskStroke == "none" || !strings.HasPrefix(riskStroke, "rgb") {
		t.Errorf("the risk line of %s has stroke %q: it is not drawn", scoped.Entity, riskStroke)
	}
	if riskSwatch == "" || !strings.HasPrefix(riskSwatch, "rgb(") {
		t.Errorf("the risk line's legend swatch has background %q", riskSwatch)
	}

	// 6. Scope of the alert's entity, and its export.
	dim := scopeDims[scoped.Entity.Kind]
	var csv string
	run("scope and export", chromedp.Navigate(srv.base+"/scope"), chromedp.WaitVisible("#scope-form", chromedp.ByID),
		chromedp.SetValue("#scope-dim", dim, chromedp.ByID), chromedp.SendKeys("#scope-value", scoped.Entity.ID, chromedp.ByID),
		chromedp.Click("#scope-go", chromedp.ByID), chromedp.WaitVisible("#scope-result", chromedp.ByID), shot("scope"),
		chromedp.Evaluate(`fetch(document.getElementById("export-csv").href).then(r => r.ok ? r.text() : "HTTP " + r.status)`, &csv,
			func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }))
	lines := strings.Split(strings.TrimSpace(csv), "\n")
	if len(lines) < 2 {
		t.Fatalf("the CSV export has %d lines:\n%s", len(lines), csv)
	}
	t.Logf("scope of %s: %d lines exported", scoped.Entity, len(lines))
	// The export is in the audit log with the analyst's name.
	if !auditHas(t, ctx, srv, "scope_export", "browser analyst") {
		t.Error("the audit log has no scope_export entry naming the analyst")
	}

	// 7. The scorecard of the same traffic, scored with the response in
	// force: its "contained by" column names what contained the attacks.
	var containedHead string
	var contained []string
	run("open the scorecard", chromedp.Navigate(srv.base+"/scorecard"), chromedp.WaitVisible("#scorecard", chromedp.ByID),
		chromedp.Evaluate(`(function () { var ths = Array.from(document.querySelectorAll("#scorecard thead th"));
			var i = ths.findIndex(function (th) { return th.textContent.trim() === "contained by"; });
			return i < 0 ? "" : ths[i].textContent.trim(); })()`, &containedHead),
		chromedp.Evaluate(`(function () { var ths = Array.from(document.querySelectorAll("#scorecard thead th"));
			var i = ths.findIndex(function (th) { return th.textContent.trim() === "contained by"; });
			if (i < 0) return [];
			return Array.from(document.querySelectorAll("#scorecard tbody tr")).map(function (tr) { return tr.children[i].textContent.trim(); })
				.filter(function (s) { return s !== "" && s !== "—"; }); })()`, &contained),
		shot("scorecard"))
	if containedHead != "contained by" || len(contained) == 0 {
		t.Errorf("the scorecard's contained-by column %q is empty for every scenario", containedHead)
	}
	t.Logf("scorecard: contained by %v", contained)

	// 8. The overview shows the continuous drills' results: a drill run
	// on demand through serve's real feeds passed, with its time to alert.
	var res struct {
		Status      string
		Reason      string
		TimeToAlert time.Duration `json:"time_to_alert_ns"`
	}
	postJSON(t, ctx, srv, "/v1/drills/canary-read/run", &res)
	if res.Status != "passed" {
		t.Fatalf("the canary-read drill: %s (%s), want passed", res.Status, res.Reason)
	}
	var drillRow, drills string
	run("see the drills on the overview", chromedp.Navigate(srv.base+"/"), chromedp.WaitVisible(`#drills tr[data-drill="canary-read"][data-status="passed"]`, chromedp.ByQuery),
		chromedp.Text(`#drills tr[data-drill="canary-read"]`, &drillRow, chromedp.ByQuery), chromedp.Text("#drills", &drills, chromedp.ByID),
		chromedp.ScrollIntoView("#drills", chromedp.ByID), shot("drills"))
	if want := res.TimeToAlert.Round(time.Millisecond).String(); !strings.Contains(strings.ToLower(drillRow), "passed") || !strings.Contains(drillRow, want) {
		t.Errorf("the overview's canary-read row is %q, want passed in %s", drillRow, want)
	}
	for _, d := range []string{"forged-token", "token-hijack", "terminated-identity"} {
		if !strings.Contains(drills, d) {
			t.Errorf("the overview's drills %q lack %s", drills, d)
		}
	}

	// 9. Logging out in another tab ends the live stream of the open
	// overview at once, and the page says so.
	run("open the overview", chromedp.Navigate(srv.base+"/"), chromedp.WaitVisible("#live-alerts", chromedp.ByID),
		chromedp.WaitNotPresent("body.offline", chromedp.ByQuery))
	tab, tabCancel := chromedp.NewContext(bctx)
	defer tabCancel()
	lctx, lcancel := context.WithTimeout(tab, 20*time.Second)
	defer lcancel()
	if err := chromedp.Run(lctx, chromedp.Navigate(srv.base+"/alerts"), chromedp.WaitVisible("form[action='/logout'] button", chromedp.ByQuery),
		chromedp.Click("form[action='/logout'] button", chromedp.ByQuery), chromedp.WaitVisible("#token", chromedp.ByID)); err != nil {
		t.Fatalf("log out in another tab: %v", err)
	}
	var stopped string
	run("see the live stream end", chromedp.WaitVisible(`#toast a[href^="/login?next="]`, chromedp.ByQuery), chromedp.Text("#toast", &stopped, chromedp.ByID),
		chromedp.WaitVisible("body.offline", chromedp.ByQuery), shot("live-ended"))
	if !strings.Contains(stopped, "Live updates stopped") || !strings.Contains(stopped, "logged out") {
		t.Errorf("after logging out elsewhere the overview says %q", stopped)
	}
}

type served struct {
	base, admin, analyst string
	dataDir              string
}

func startServe(t *testing.T, ctx context.Context) *served {
	t.Helper()
	data := t.TempDir()
	st, err := store.Open(ctx, data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	admin, _, err := auth.CreateToken(ctx, st, auth.RoleAdmin, "browser admin", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	analyst, _, err := auth.CreateToken(ctx, st, auth.RoleAnalyst, "browser analyst", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	// A receiver that acknowledges every webhook.
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.Copy(io.Discard, r.Body) }))
	t.Cleanup(rcv.Close)
	cfg := config.Default()
	cfg.DataDir = data
	cfg.Log.Level = "error"
	cfg.Respond.Mode = respond.ModeEnforce
	cfg.Respond.Secret, cfg.Respond.SecretEnv = "browser-test-secret-0123456789abcdef", ""
	cfg.Respond.Receivers = map[string]respond.Receiver{}
	for _, k := range []string{respond.KindRevokeKey, respond.KindRevokeToken, respond.KindBlockSource, respond.KindDisableIdentity} {
		cfg.Respond.Receivers[k] = respond.Receiver{URL: rcv.URL, AllowPrivate: true}
	}
	// Every key revocation and identity disablement waits for approval.
	cfg.Respond.RateLimits = map[string]int{respond.KindRevokeKey: 0, respond.KindDisableIdentity: 0}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(sctx, app.ServeOptions{Config: cfg, CanaryIDs: []string{"70000003"}, Listener: ln,
			Ready: func(u string) { ready <- u }, Announce: io.Discard})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	select {
	case base := <-ready:
		return &served{base: base, admin: admin, analyst: analyst, dataDir: data}
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-ctx.Done():
		t.Fatal("serve did not start")
	}
	return nil
}

// feedDemo posts two simulated days (ending now) of a small company with
// its breaches, and returns the simulation's options.
func feedDemo(t *testing.T, ctx context.Context, srv *served) sim.Options {
	t.Helper()
	days := 2
	opts := sim.Options{Seed: 1, Days: days, Customers: 2000,
		Start: time.Now().UTC().Truncate(time.Hour).Add(-time.Duration(days) * 24 * time.Hour)}
	var buf bytes.Buffer
	if _, err := sim.Generate(ctx, opts, &buf, nil); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var batch bytes.Buffer
	post := func() {
		postEvents(t, ctx, srv, batch.Bytes())
		batch.Reset()
	}
	for sc.Scan() {
		batch.Write(sc.Bytes())
		batch.WriteByte('\n')
		if batch.Len() > 1<<20 {
			post()
		}
	}
	if batch.Len() > 0 {
		post()
	}
	return opts
}

// saveScorecard scores the simulation of opts as haechi eval does, with
// the response in force, and saves it where the console reads it.
func saveScorecard(t *testing.T, ctx context.Context, srv *served, opts sim.Options) {
	t.Helper()
	tr, err := sim.Generate(ctx, opts, io.Discard, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Log.Level = "error"
	cfg.Respond.Mode = respond.ModeEnforce
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	sc, err := eval.RunWith(ctx, eval.RunOptions{Config: cfg, Truth: tr, Events: func() (io.ReadCloser, error) {
		var buf bytes.Buffer
		if _, err := sim.Generate(ctx, opts, &buf, nil); err != nil {
			return nil, err
		}
		return io.NopCloser(&buf), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	saved, err := console.NewSavedScorecard("eval", "the browser test's traffic", sc, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := console.SaveScorecard(srv.dataDir, saved); err != nil {
		t.Fatal(err)
	}
}

// postEvents posts NDJSON with the admin token, retrying while haechi is
// busy.
func postEvents(t *testing.T, ctx context.Context, srv *served, body []byte) {
	t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.base+"/v1/events", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+srv.admin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if resp.StatusCode != http.StatusOK || bytes.Contains(b, []byte(`"rejected":1`)) {
			t.Fatalf("post events: %s %s", resp.Status, b)
		}
		return
	}
}

// postJSON posts an empty body to path as the admin and decodes the answer.
func postJSON(t *testing.T, ctx context.Context, srv *served, path string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+srv.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
}

func getJSON(t *testing.T, ctx context.Context, srv *served, path string, v any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+srv.admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
}

var scopeDims = map[event.EntityKind]string{event.EntityPrincipal: "principal", event.EntitySigningKey: "key", event.EntitySource: "source"}

// waitForData waits until a critical alert and a pending action exist and
// the alerts stop changing. It returns the newest critical alert, the
// newest critical alert about an entity the ledger scopes (principal, key,
// source), and a pending action.
func waitForData(t *testing.T, ctx context.Context, srv *served) (critical, scoped event.Alert, pending store.Action) {
	t.Helper()
	var last string
	stable := 0
	for {
		var al struct{ Alerts []event.Alert }
		getJSON(t, ctx, srv, "/v1/alerts?limit=1000", &al)
		var acts struct{ Actions []store.Action }
		getJSON(t, ctx, srv, "/v1/actions?state=pending_approval&limit=1000", &acts)
		sig := fmt.Sprint(len(al.Alerts), len(acts.Actions))
		for _, a := range al.Alerts {
			sig += fmt.Sprint(a.FindingCount)
		}
		if sig == last {
			stable++
		} else {
			stable = 0
		}
		last = sig
		var crit *event.Alert
		var scoped []*event.Alert  // critical, about an entity the ledger scopes, newest first
		for i := range al.Alerts { // newest first
			if al.Alerts[i].Severity != event.SeverityCritical {
				continue
			}
			if crit == nil {
				crit = &al.Alerts[i]
			}
			if scopeDims[al.Alerts[i].Entity.Kind] != "" {
				scoped = append(scoped, &al.Alerts[i])
			}
		}
		// The analyst decides: leave out actions held for an admin (a
		// protected or privileged principal's, a consumer network's
		// block; store.Action.NeedsAdmin, which the API does not show,
		// says it in the reason).
		acts.Actions = slices.DeleteFunc(acts.Actions, func(a store.Action) bool {
			return strings.HasPrefix(a.Reason, "protected ") || strings.HasPrefix(a.Reason, "privileged principal ") ||
				strings.HasPrefix(a.Reason, "network-wide block ")
		})
		why := fmt.Sprintf("critical %v, %d scoped, stable for %d polls", crit != nil, len(scoped), stable)
		if crit != nil && len(scoped) > 0 && len(acts.Actions) > 0 && stable >= 6 {
			// The ledger is written off the hot path, after the alerts:
			// wait until it has the entity's touches (seconds at most:
			// ledger.DefaultMaxStale). The newest alert whose entity
			// touched records: a source that only tried logins (a
			// stuffing bot) is critical and touched none.
			for _, sc := range scoped {
				var res struct{ Total int64 }
				getJSON(t, ctx, srv, "/v1/scope?"+url.Values{scopeDims[sc.Entity.Kind]: {sc.Entity.ID}}.Encode(), &res)
				if res.Total > 0 {
					return *crit, *sc, acts.Actions[0]
				}
			}
			why += "; the ledger holds nothing for any of them"
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no critical alert with a scope in the ledger and a pending action appeared: %d alerts, %d pending (%s)", len(al.Alerts), len(acts.Actions), why)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func newestCritical(t *testing.T, ctx context.Context, srv *served) event.Alert {
	var al struct{ Alerts []event.Alert }
	getJSON(t, ctx, srv, "/v1/alerts?limit=1000", &al)
	for _, a := range al.Alerts {
		if a.Severity == event.SeverityCritical {
			return a
		}
	}
	return event.Alert{}
}

func actionState(t *testing.T, ctx context.Context, srv *served, id string) string {
	var a store.Action
	getJSON(t, ctx, srv, "/v1/actions/"+url.PathEscape(id), &a)
	return a.State
}

func auditHas(t *testing.T, ctx context.Context, srv *served, kind, who string) bool {
	t.Helper()
	st, err := store.Open(ctx, srv.dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.AuditLog(ctx, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Kind == kind && strings.Contains(string(r.Detail), who) {
			return true
		}
	}
	return false
}
