package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/drill"
	"github.com/haechi-sec/haechi/internal/respond"
	"github.com/haechi-sec/haechi/internal/store"
)

// drillServe starts serve with cfg (in a new temporary data directory
// unless cfg names one) and a deployment's own feed: a customer
// reading every 200 ms at the wall clock and, unless noMints, minting a
// token (so the issuer stream, auth.token, moves as in production) and an
// engineer's cloud audit event (aws.cloudtrail).
func drillServe(t *testing.T, cfg config.Config, noMints bool) (base string, stop func()) {
	t.Helper()
	if cfg.DataDir == config.Default().DataDir {
		cfg.DataDir = t.TempDir()
	}
	cfg.Listen = "127.0.0.1:0"
	cfg.Drills.Enabled = false // on demand only
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- app.Serve(ctx, app.ServeOptions{Config: cfg, Ready: func(u string) { ready <- u }, InsecureNoAuth: true})
	}()
	select {
	case base = <-ready:
	case err := <-done:
		cancel()
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	feedCtx, stopFeed := context.WithCancel(ctx)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; feedCtx.Err() == nil; i++ {
			now := time.Now().UTC()
			ts := now.Format(time.RFC3339Nano)
			var b strings.Builder
			if !noMints {
				fmt.Fprintf(&b, `{"@timestamp":%q,"event":{"dataset":"auth.token","action":"token.issued","outcome":"success"},"user":{"id":"m:%d"},"token":{"id":"tk-%d","key_id":"auth-1","issued_at":%q,"expires_at":%q},"source":{"ip":"211.234.10.9"}}`+"\n",
					ts, i%50, i, ts, now.Add(time.Hour).Format(time.RFC3339))
				// The cloud's audit log: an engineer's long-term key.
				fmt.Fprintf(&b, `{"@timestamp":%q,"event":{"dataset":"aws.cloudtrail","action":"GetObject","outcome":"success","provider":"s3.amazonaws.com"},"user":{"id":"arn:aws:iam::000000000000:user/ops"},"token":{"id":"AKIAEXAMPLEOPS000001"},"source":{"ip":"211.234.10.9"},"records":{"type":"s3_object","ids":["reports/%d.csv"]}}`+"\n",
					ts, i%50)
			}
			fmt.Fprintf(&b, `{"@timestamp":%q,"event":{"dataset":"gateway.access","action":"member.profile.read","outcome":"success"},"user":{"id":"m:%d"},"source":{"ip":"211.234.10.9"},"records":{"type":"customer","ids":["%d"],"fields":["name"]}}`+"\n",
				ts, i%50, i%50)
			resp, err := http.Post(base+"/v1/events", "application/x-ndjson", strings.NewReader(b.String()))
			if err == nil {
				resp.Body.Close()
			}
			select {
			case <-feedCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return base, func() {
		stopFeed()
		wg.Wait()
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func runDrill(t *testing.T, base, name string) drill.Result {
	t.Helper()
	resp, err := http.Post(base+"/v1/drills/"+name+"/run", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("run %s: %s %s", name, resp.Status, body)
	}
	var res drill.Result
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	return res
}

func drillConfig() config.Config {
	cfg := config.Default()
	// Keep the forged-token verdict quick: the issuer stream needs to pass
	// the token's issue time by this much.
	cfg.Detectors.TokenProvenance.MintSkew = config.Duration(2 * time.Second)
	return cfg
}

// Every default drill passes on a serve whose feeds carry what they need,
// and no drill entity reaches the access ledger.
func TestDrillsDefaultPass(t *testing.T) {
	if testing.Short() {
		t.Skip("runs serve for about a minute of wall time")
	}
	cfg := drillConfig()
	base, stop := drillServe(t, cfg, false)
	time.Sleep(2 * time.Second) // the deployment's feed has been seen
	var results []drill.Result
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, d := range cfg.Drills.Definitions() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := runDrill(t, base, d.Name)
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		}()
	}
	wg.Wait()
	for _, res := range results {
		if res.Status != drill.Passed {
			t.Errorf("drill %s: %s: %s", res.Drill, res.Status, res.Reason)
			continue
		}
		if len(res.Alerts) == 0 || res.TimeToAlert <= 0 {
			t.Errorf("drill %s passed without alerts or time: %+v", res.Drill, res)
		}
		t.Logf("drill %s passed in %s (alerts %v, actions %v)", res.Drill, res.TimeToAlert, res.Alerts, res.Actions)
		// Every expected action was planned for the drill's alerts, and
		// containment as dry-run (a drill's is never delivered).
		def := cfg.Drills.Definitions()[slices.IndexFunc(cfg.Drills.Definitions(), func(d drill.Definition) bool { return d.Name == res.Drill })]
		for _, k := range def.Expect.Actions {
			if !slices.ContainsFunc(res.Actions, func(a drill.PlannedAction) bool { return a.Kind == k && a.State == respond.StateDryRun }) {
				t.Errorf("drill %s: expected action %s not planned dry-run: %+v", res.Drill, k, res.Actions)
			}
		}
		// What the run produced is kept with it: GET /v1/drills/runs/{run}
		// has its alerts with their findings, its findings and its actions.
		var detail struct {
			Run, Status string
			Detail      struct {
				Alerts []struct {
					ID       string
					Findings []struct{ Detector string }
				}
				Findings []struct{ Detector string }
				Actions  []drill.PlannedAction
			}
		}
		if err := json.Unmarshal([]byte(get(t, base+"/v1/drills/runs/"+res.Run)), &detail); err != nil {
			t.Fatal(err)
		}
		if detail.Run != res.Run || detail.Status != string(drill.Passed) || len(detail.Detail.Alerts) == 0 ||
			len(detail.Detail.Alerts[0].Findings) == 0 || len(detail.Detail.Findings) == 0 || len(detail.Detail.Actions) != len(res.Actions) {
			t.Errorf("drill %s: GET /v1/drills/runs/%s = %+v", res.Drill, res.Run, detail)
		}
		for _, id := range res.Alerts {
			if !slices.ContainsFunc(detail.Detail.Alerts, func(a struct {
				ID       string
				Findings []struct{ Detector string }
			}) bool {
				return a.ID == id
			}) {
				t.Errorf("drill %s: alert %s not kept with the run", res.Drill, id)
			}
		}
	}
	if resp, err := http.Get(base + "/v1/drills/runs/nope"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown run: %v %v", resp.Status, err)
	} else {
		resp.Body.Close()
	}

	// GET /v1/drills lists every drill with its last result.
	resp, err := http.Get(base + "/v1/drills")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Drills []struct {
			Name string
			Last *store.DrillRun
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(list.Drills) != len(cfg.Drills.List) {
		t.Fatalf("GET /v1/drills: %d drills, want %d", len(list.Drills), len(cfg.Drills.List))
	}
	for _, d := range list.Drills {
		if d.Last == nil || d.Last.Status != string(drill.Passed) {
			t.Errorf("GET /v1/drills: %s last = %+v", d.Name, d.Last)
		}
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{`haechi_drill_last_success_timestamp_seconds{drill="canary-read"}`, `haechi_drill_failures_total{drill="canary-read"} 0`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// Drill entities never reach the access ledger; the deployment's own
	// customer does (so the ledger is recording).
	scopeTotal := func(q string, tries int) int64 {
		var sc struct{ Total int64 }
		for range tries { // the live ledger flushes within a second or so
			resp, err := http.Get(base + "/v1/scope?" + q)
			if err != nil {
				t.Fatal(err)
			}
			json.NewDecoder(resp.Body).Decode(&sc)
			resp.Body.Close()
			if sc.Total > 0 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		return sc.Total
	}
	if n := scopeTotal("principal=m:1", 50); n == 0 {
		t.Errorf("scope of the deployment's customer m:1 is empty: the ledger records nothing, so the drill check below proves nothing")
	}
	for _, res := range results {
		q := string(res.Entity.Kind) + "=" + res.Entity.ID
		if res.Entity.Kind == "principal" || res.Entity.Kind == "key" || res.Entity.Kind == "token" || res.Entity.Kind == "source" {
			if n := scopeTotal(q, 1); n != 0 {
				t.Errorf("drill %s: scope %s = %d records, want none", res.Drill, q, n)
			}
		}
	}
	if n := scopeTotal("country=NL", 1); n != 0 {
		t.Errorf("the hijack drill's country in scope: %d records", n)
	}

	// Drill alerts, findings and incidents are kept apart from the real
	// ones: the stored lists name no drill entity, and the deployment's own
	// alerts (its rule-free feed raises none) are not needed to see it.
	time.Sleep(500 * time.Millisecond) // the store writer's batch
	for _, path := range []string{"/v1/alerts?limit=1000", "/v1/findings?limit=1000", "/v1/incidents?limit=1000"} {
		body := get(t, base+path)
		for _, bad := range []string{drill.Prefix, "198.18."} {
			if strings.Contains(body, bad) {
				t.Errorf("%s names a drill entity (%s): %.300s", path, bad, body)
			}
		}
		for _, res := range results {
			for _, id := range res.Alerts {
				if strings.Contains(body, id) {
					t.Errorf("%s holds the drill's alert %s", path, id)
				}
			}
		}
	}
	// Detection health counts the deployment's own findings: its feed
	// raises no canary, binding or terminated-identity finding, and the
	// drills' are left out.
	overview := get(t, base+"/")
	for _, det := range []string{"canary_record", "token_binding", "terminated_identity", "cloud_credential"} {
		row := regexp.MustCompile(`<tr><td>` + det + `</td><td class="num">([^<]*)</td><td>(.*?)</td></tr>`).FindStringSubmatch(overview)
		if row == nil {
			t.Errorf("detection health has no row for %s", det)
			continue
		}
		if row[1] != "0" || !strings.Contains(row[2], "none yet") {
			t.Errorf("detection health counts drill findings: %s: %s findings, last %s", det, row[1], row[2])
		}
	}
	stop()
}

// A playbook changed so that it no longer plans the drill's expected
// actions makes the drill fail, naming the missing actions, what was
// planned and why the planner did not plan them, and raises the
// detection-regression alert.
func TestDrillPlaybookActionMissing(t *testing.T) {
	cfg := drillConfig()
	for i, pb := range cfg.Respond.Playbooks {
		if pb.Name == "token_hijack" {
			pb.Actions = []respond.ActionSpec{{Kind: respond.KindNotify}}
			cfg.Respond.Playbooks = slices.Clone(cfg.Respond.Playbooks)
			cfg.Respond.Playbooks[i] = pb
		}
	}
	for i := range cfg.Drills.List {
		cfg.Drills.List[i].Within = config.Duration(3 * time.Second)
	}
	base, stop := drillServe(t, cfg, false)
	defer stop()
	time.Sleep(time.Second) // the deployment's feed has been seen
	res := runDrill(t, base, "token-hijack")
	if res.Status != drill.Failed {
		t.Fatalf("drill whose playbook plans only a notice: %s (%s), want failed", res.Status, res.Reason)
	}
	for _, want := range []string{"expected action revoke_token, block_source, planned: notify ", "(skipped: no receiver configured (notify))",
		"revoke_token not planned: the playbooks matching the alert have no revoke_token action: token_hijack (notify)",
		"block_source not planned: the playbooks matching the alert have no block_source action: token_hijack (notify)",
		"; playbook forged_token (which has revoke_token) does not match the alert: finding kinds token_binding_",
		"; playbook forged_token (which has block_source) does not match the alert: finding kinds token_binding_",
		"the playbooks with block_source (canary_read, cloud_credential, privileged_takeover, login_campaign, behavioural_contain, rules_contain) are for other detectors than the alert's (token_binding"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason %q lacks %q", res.Reason, want)
		}
	}
	if strings.Contains(res.Reason, "expected detector") {
		t.Errorf("the detection was met, yet the reason says otherwise: %q", res.Reason)
	}
	var found bool
	for range 50 {
		if body := get(t, base+"/v1/alerts"); strings.Contains(body, `"id":"al-drill-`+res.Run+`"`) {
			found = strings.Contains(body, "expected action revoke_token")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !found {
		t.Error("no detection-regression alert naming the missing action")
	}
}

// A run cut short by serve stopping is stored interrupted, not lost; a run
// a previous process left running is marked interrupted at the next
// start.
func TestDrillInterruptedByStop(t *testing.T) {
	cfg := drillConfig()
	cfg.DataDir = t.TempDir()
	cfg.Detectors.TerminatedIdentity.Enabled = false // the drill waits its whole minute
	base, stop := drillServe(t, cfg, false)
	got := make(chan drill.Result, 1)
	go func() { got <- runDrill(t, base, "terminated-identity") }()
	var running string
	for range 100 {
		var list struct{ Results []store.DrillRun }
		json.Unmarshal([]byte(get(t, base+"/v1/drills")), &list)
		if len(list.Results) > 0 && list.Results[0].Status == string(drill.Running) {
			running = list.Results[0].Run
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if running == "" {
		t.Fatal("the run in flight is not stored as running")
	}
	stop()
	res := <-got
	if res.Status != drill.Interrupted || !strings.Contains(res.Reason, "drills stopped") {
		t.Errorf("answer of the run cut by the stop: %s %q", res.Status, res.Reason)
	}
	st, err := store.Open(t.Context(), cfg.DataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	run, err := st.GetDrillRun(t.Context(), running)
	if err != nil || run.Status != string(drill.Interrupted) || !strings.Contains(run.Reason, "no verdict on detection") {
		t.Errorf("stored run cut by the stop: %+v %v", run, err)
	}
	// A crash leaves a run stored as running: the next start marks it.
	if err := st.PutDrillRun(t.Context(), store.DrillRun{Run: "crashed-1", Drill: "canary-read", Kind: "canary_read", Started: time.Now(), Status: "running"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	base, stop = drillServe(t, cfg, false)
	defer stop()
	var list struct{ Results []store.DrillRun }
	json.Unmarshal([]byte(get(t, base+"/v1/drills")), &list)
	i := slices.IndexFunc(list.Results, func(r store.DrillRun) bool { return r.Run == "crashed-1" })
	if i < 0 || list.Results[i].Status != string(drill.Interrupted) || !strings.Contains(list.Results[i].Reason, "serve stopped") {
		t.Errorf("run left running by a crash: %+v", list.Results)
	}
}

// Without the spool, drills cannot run, and every drill says so.
func TestDrillsWithoutSpool(t *testing.T) {
	cfg := drillConfig()
	cfg.Spool.Enabled = false
	base, stop := drillServe(t, cfg, false)
	defer stop()
	res := runDrill(t, base, "canary-read")
	if res.Status != drill.CannotRun || !strings.Contains(res.Reason, "cannot run: drills go through serve's durable ingest, and spool.enabled is false") {
		t.Errorf("drill without the spool: %s %q", res.Status, res.Reason)
	}
	if body := get(t, base+"/v1/drills"); !strings.Contains(body, `"cannot_run":"cannot run: drills go through`) {
		t.Errorf("GET /v1/drills without the spool: %s", body)
	}
}

// Disabling a detector makes its drill fail with a reason that names it,
// counts the failure and raises the detection-regression alert.
func TestDrillDisabledDetectorFails(t *testing.T) {
	var mu sync.Mutex
	var notices []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		notices = append(notices, string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	cfg := drillConfig()
	cfg.Respond.Secret = "s3cret"
	cfg.Respond.Receivers = map[string]respond.Receiver{"notify": {URL: recv.URL, AllowPrivate: true}}
	cfg.Detectors.TerminatedIdentity.Enabled = false
	for i := range cfg.Drills.List {
		cfg.Drills.List[i].Within = config.Duration(2 * time.Second)
	}
	base, stop := drillServe(t, cfg, false)
	defer stop()
	res := runDrill(t, base, "terminated-identity")
	if res.Status != drill.Failed {
		t.Fatalf("drill with its detector disabled: %s (%s), want failed", res.Status, res.Reason)
	}
	for _, want := range []string{"expected detector terminated_identity", "not running in this configuration: terminated_identity"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason %q lacks %q", res.Reason, want)
		}
	}
	if other := runDrill(t, base, "canary-read"); other.Status != drill.Passed {
		t.Errorf("canary-read: %s (%s), want passed", other.Status, other.Reason)
	}
	if m := get(t, base+"/metrics"); !strings.Contains(m, `haechi_drill_failures_total{drill="terminated-identity"} 1`) {
		t.Errorf("failure not counted")
	}
	var found bool
	for range 50 {
		var list struct {
			Alerts []struct {
				ID, Detector, Severity string
				Entity                 struct{ Kind, ID string }
			}
		}
		resp, err := http.Get(base + "/v1/alerts")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		for _, a := range list.Alerts {
			if a.Detector == "drill" && a.Entity.ID == "terminated-identity" && a.Severity == "high" {
				found = true
			}
		}
		if found {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !found {
		t.Error("no detection-regression alert for the failed drill")
	}
	// ... and its notice reaches the notify receiver.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		got := strings.Join(notices, "\n")
		mu.Unlock()
		if strings.Contains(got, `"alert_id":"al-drill-terminated-identity-`) {
			return
		}
	}
	t.Errorf("no regression notice delivered; got %q", notices)
}

// A feed without the issuer stream cannot run the forged-token drill: a
// result that says so, not a failure.
func TestDrillMissingStream(t *testing.T) {
	base, stop := drillServe(t, drillConfig(), true)
	defer stop()
	time.Sleep(time.Second)
	res := runDrill(t, base, "forged-token")
	if res.Status != drill.CannotRun || !strings.Contains(res.Reason, "cannot run: missing stream auth.token") {
		t.Fatalf("forged-token without auth.token: %s %q", res.Status, res.Reason)
	}
	if m := get(t, base+"/metrics"); !strings.Contains(m, `haechi_drill_failures_total{drill="forged-token"} 0`) {
		t.Errorf("cannot-run counted as a failure")
	}
	// Nor the cloud-credential drill without the cloud's audit log; the
	// fan-out drill has the access stream it needs.
	if res := runDrill(t, base, "cloud-credential"); res.Status != drill.CannotRun || !strings.Contains(res.Reason, "cannot run: missing stream aws.cloudtrail") {
		t.Errorf("cloud-credential without aws.cloudtrail: %s %q", res.Status, res.Reason)
	}
	if res := runDrill(t, base, "source-fanout"); res.Status != drill.Passed {
		t.Errorf("source-fanout with gateway.access: %s %q", res.Status, res.Reason)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	io.Copy(&b, resp.Body)
	return b.String()
}

// In enforce mode, containment planned for a drill's alert goes through the
// real planner as dry-run, its payload marked drill: true; the receiver of
// containment hears nothing.
func TestDrillContainmentDryRun(t *testing.T) {
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, r.URL.Path+" "+string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	cfg := drillConfig()
	cfg.Respond.Mode = respond.ModeEnforce
	cfg.Respond.Secret = "s3cret"
	cfg.Respond.Receivers = map[string]respond.Receiver{}
	for _, k := range respond.ActionKinds {
		cfg.Respond.Receivers[k] = respond.Receiver{URL: recv.URL + "/" + k, AllowPrivate: true}
	}
	base, stop := drillServe(t, cfg, false)
	defer stop()
	res := runDrill(t, base, "terminated-identity")
	if res.Status != drill.Passed {
		t.Fatalf("%s: %s", res.Status, res.Reason)
	}
	var list struct {
		Actions []struct {
			Kind, State, Reason string
			Payload             struct{ Drill bool }
		}
	}
	for range 50 {
		resp, err := http.Get(base + "/v1/actions?alert=" + res.Alerts[0])
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list.Actions) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(list.Actions) == 0 {
		t.Fatal("no action planned for the drill's alert")
	}
	for _, a := range list.Actions {
		if !a.Payload.Drill {
			t.Errorf("action %s: payload not marked drill", a.Kind)
		}
		if respond.IsContainment(a.Kind) && a.State != respond.StateDryRun {
			t.Errorf("containment %s of a drill: %s (%s), want dry_run", a.Kind, a.State, a.Reason)
		}
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	for _, g := range got {
		k, _, _ := strings.Cut(strings.TrimPrefix(g, "/"), " ")
		if respond.IsContainment(k) {
			t.Errorf("containment delivered for a drill: %s", g)
		} else if !strings.Contains(g, `"drill":true`) {
			t.Errorf("notice without drill: true: %s", g)
		}
	}
}

// With drills.receiver, every action of a drill's alert names the drills'
// own receiver: its notices are delivered there, marked drill: true, and
// the deployment's notify receiver hears nothing of the drill.
func TestDrillReceiver(t *testing.T) {
	var mu sync.Mutex
	got := map[string][]string{}
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = append(got[r.URL.Path], string(b))
		mu.Unlock()
	}))
	defer recv.Close()
	cfg := drillConfig()
	cfg.Respond.Mode = respond.ModeEnforce
	cfg.Respond.Secret = "s3cret"
	cfg.Respond.Receivers = map[string]respond.Receiver{}
	for _, k := range respond.ActionKinds {
		cfg.Respond.Receivers[k] = respond.Receiver{URL: recv.URL + "/" + k, AllowPrivate: true}
	}
	cfg.Drills.Receiver = respond.Receiver{URL: recv.URL + "/drills", AllowPrivate: true}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	base, stop := drillServe(t, cfg, false)
	defer stop()
	res := runDrill(t, base, "terminated-identity")
	if res.Status != drill.Passed {
		t.Fatalf("%s: %s", res.Status, res.Reason)
	}
	var list struct {
		Actions []struct{ Kind, State, Receiver string }
	}
	for range 50 {
		resp, err := http.Get(base + "/v1/actions?alert=" + res.Alerts[0])
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&list)
		resp.Body.Close()
		if len(list.Actions) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(list.Actions) == 0 {
		t.Fatal("no action planned for the drill's alert")
	}
	for _, a := range list.Actions {
		if a.Receiver != respond.DrillReceiver {
			t.Errorf("action %s (%s) names receiver %q, want %q", a.Kind, a.State, a.Receiver, respond.DrillReceiver)
		}
	}
	for range 50 {
		mu.Lock()
		n := len(got["/drills"])
		mu.Unlock()
		if n > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got["/drills"]) == 0 {
		t.Fatalf("the drills' receiver heard nothing; deliveries: %v", got)
	}
	for _, b := range got["/drills"] {
		if !strings.Contains(b, `"drill":true`) {
			t.Errorf("drill receiver body without drill: true: %.200s", b)
		}
	}
	for path, bodies := range got {
		if path != "/drills" {
			t.Errorf("%s heard of the drill: %.200s", path, bodies)
		}
	}
}
