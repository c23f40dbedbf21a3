package faulttrial

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/google/go-cmp/cmp"
	_ "modernc.org/sqlite"

	"github.com/haechi-sec/haechi/internal/cli"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestMain runs the test binary as `haechi` when the harness starts it as
// a child (HAECHI_FAULT_CHILD=1), so the trial needs no separate build.
func TestMain(m *testing.M) {
	if os.Getenv("HAECHI_FAULT_CHILD") == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		code := cli.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestFaultTrial streams a simulated company into serve, SIGKILLs it at
// random moments, restarts it, and requires the stored outcome to equal a
// clean run's.
func TestFaultTrial(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fault trial: not in -short or under -race (the plain go test run has it)")
	}
	kills := envInt(t, "HAECHI_FAULT_KILLS", 10)
	days := envInt(t, "HAECHI_FAULT_DAYS", 1)
	customers := envInt(t, "HAECHI_FAULT_CUSTOMERS", 20000)
	seed := uint64(envInt(t, "HAECHI_FAULT_SEED", 7))

	// Events in the future, and an idleness longer than the trial (see the
	// config in run): the wall clock never moves event time, so the
	// outcome depends on the events alone.
	var buf bytes.Buffer
	start := time.Now().UTC().Add(72 * time.Hour).Truncate(24 * time.Hour)
	if _, err := sim.Generate(t.Context(), sim.Options{Seed: seed, Days: days, Customers: customers, Start: start}, &buf, nil); err != nil {
		t.Fatal(err)
	}
	bodies := split(buf.Bytes(), 400)
	lines := bytes.Count(buf.Bytes(), []byte("\n"))
	t.Logf("%d events in %d requests (%d MB)", lines, len(bodies), buf.Len()>>20)

	// Every event is within ingest.max_future of the wall clock whenever
	// it is posted: otherwise the runs' acceptance depends on how long
	// they took (a slower run accepts a little more of the last day).
	maxFuture = time.Duration(days+10) * 24 * time.Hour
	clean := run(t, "clean", bodies, 0, seed)
	trial := run(t, "trial", bodies, kills, seed)
	t.Logf("clean: %s", clean.summary())
	t.Logf("trial: %s (%d kills)", trial.summary(), trial.kills)
	if trial.kills < kills {
		t.Errorf("only %d of %d kills happened", trial.kills, kills)
	}
	compare(t, clean, trial)
	// Every delivered action was in the outbox, and every action delivered
	// in the clean run was delivered in the trial (receivers dedupe retried
	// deliveries by their Idempotency-Key).
	for key := range trial.delivered {
		if !slices.ContainsFunc(trial.actions, func(a string) bool { return strings.HasPrefix(a, key+" ") }) {
			t.Errorf("delivered %s, which is not in the outbox", key)
		}
	}
	for key := range clean.delivered {
		if _, ok := trial.delivered[key]; !ok {
			t.Errorf("action %s delivered in the clean run, never in the trial", key)
		}
	}
}

// compare requires the trial to have stored what the clean run stored.
func compare(t *testing.T, clean, trial outcome) {
	t.Helper()
	for _, c := range []struct {
		name      string
		want, got any
	}{
		{"alerts", clean.alerts, trial.alerts},
		{"findings", clean.findings, trial.findings},
		{"ledger", clean.ledger, trial.ledger},
		{"ledger dictionaries", clean.dict, trial.dict},
		{"actions", clean.actions, trial.actions},
		{"incidents", clean.incidents, trial.incidents},
		{"incident rows", clean.incidentRows, trial.incidentRows},
		{"incident join keys", clean.incidentKeys, trial.incidentKeys},
		{"citations", clean.citations, trial.citations},
	} {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s differ between the clean run and the trial (-clean +trial):\n%s", c.name, diff)
		}
	}
	if len(clean.incidents) == 0 {
		t.Error("the clean run stored no incidents")
	}
	if len(clean.dict) == 0 {
		t.Error("the clean run's ledger dictionary is empty: the comparison of record ids proves little")
	}
	for _, o := range []outcome{clean, trial} {
		if len(o.unannounced) > 0 {
			t.Errorf("%s: incidents without a notice: %v", o.name, o.unannounced)
		}
		if len(o.dictErrs) > 0 {
			t.Errorf("%s: the ledger and its dictionary disagree (%d problems), e.g. %v", o.name, len(o.dictErrs), o.dictErrs[:min(len(o.dictErrs), 10)])
		}
	}
}

// TestFaultTrialStored compares the clean run and the trial kept in
// HAECHI_FAULT_COMPARE (a HAECHI_FAULT_DIR of an earlier trial) again, as
// TestFaultTrial does: a changed comparison can be checked on a long
// trial's stores without running it again.
func TestFaultTrialStored(t *testing.T) {
	base := os.Getenv("HAECHI_FAULT_COMPARE")
	if base == "" {
		t.Skip("HAECHI_FAULT_COMPARE names no kept trial")
	}
	var clean, trial outcome
	clean.name, trial.name = "clean", "trial"
	readStore(t, filepath.Join(base, "clean", "data"), &clean)
	readStore(t, filepath.Join(base, "trial", "data"), &trial)
	t.Logf("clean: %s", clean.summary())
	t.Logf("trial: %s", trial.summary())
	compare(t, clean, trial)
}

// split cuts NDJSON into request bodies of n lines.
func split(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		end := 0
		for i := 0; i < n && end < len(b); i++ {
			j := bytes.IndexByte(b[end:], '\n')
			if j < 0 {
				end = len(b)
				break
			}
			end += j + 1
		}
		out = append(out, b[:end])
		b = b[end:]
	}
	return out
}

// outcome is what a run stored, normalised for comparison.
type outcome struct {
	name     string
	alerts   []string
	findings []string
	ledger   []string
	actions  []string
	// incidents: each alert's incident; unannounced: incidents no
	// incident notice names (want none).
	incidents, unannounced []string
	// incidentRows: the incidents as stored, without wall-clock columns.
	incidentRows []string
	// incidentKeys, citations: what incident grouping reads (want the same).
	incidentKeys, citations []string
	// dict: the ledger dictionary's record ids, sorted (its numbers depend
	// on which shard met an id first, so only the ids are compared);
	// dictErrs: ledger numbers without a dictionary entry, record ids
	// with two numbers (want none).
	dict, dictErrs []string
	delivered      map[string]int
	// phases: what the kills interrupted (HAECHI_FAULT_SIGNAL=quit).
	phases  map[string]int
	kills   int
	retries int
}

func (o outcome) summary() string {
	return fmt.Sprintf("%d alerts, %d findings, %d ledger rows, %d dictionary entries, %d actions, %d incidents (%d join keys, %d citations), %d delivered, %d retried requests",
		len(o.alerts), len(o.findings), len(o.ledger), len(o.dict), len(o.actions), len(o.incidentRows), len(o.incidentKeys), len(o.citations), len(o.delivered), o.retries)
}

// server is one serve child process.
type server struct {
	cmd  *exec.Cmd
	base string
	done chan struct{}
	// log and logStart: the log file and where this process's part of it
	// begins.
	log      string
	logStart int64
}

var urlRE = regexp.MustCompile(`url=(http://[0-9.:]+)`)

func startServer(t *testing.T, cfgPath, logPath string) *server {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--insecure-no-auth", "--config", cfgPath) // loopback only: the trial is about durability, not access control
	cmd.Env = append(os.Environ(), "HAECHI_FAULT_CHILD=1")
	if quitKills() {
		cmd.Env = append(cmd.Env, "GOTRACEBACK=all")
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := logf.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	cmd.Stderr = io.MultiWriter(logf, pw)
	cmd.Stdout = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan struct{}), log: logPath, logStart: fi.Size()}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			if m := urlRE.FindStringSubmatch(sc.Text()); m != nil && strings.Contains(sc.Text(), "haechi serving") {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		logf.Close()
		close(s.done)
	}()
	select {
	case s.base = <-found:
	case <-s.done:
		t.Fatalf("serve exited at start-up; log %s", logPath)
	case <-time.After(2 * time.Minute):
		t.Fatalf("serve did not start; log %s", logPath)
	}
	return s
}

// quitKills reports whether kills are SIGQUITs (HAECHI_FAULT_SIGNAL=quit)
// rather than SIGKILLs: the Go runtime stops every goroutine, prints
// their stacks and exits, as abruptly for the data on disk, and the stacks
// show what each kill interrupted (killPhases).
func quitKills() bool { return os.Getenv("HAECHI_FAULT_SIGNAL") == "quit" }

// kill kills the process; with quitKills it returns what was in progress
// when it died (killPhases).
func (s *server) kill() []string {
	if !quitKills() {
		s.cmd.Process.Signal(syscall.SIGKILL)
		<-s.done
		return nil
	}
	s.cmd.Process.Signal(syscall.SIGQUIT)
	<-s.done
	f, err := os.Open(s.log)
	if err != nil {
		return []string{"(log unreadable)"}
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, s.logStart, math.MaxInt64-s.logStart))
	if err != nil || !bytes.Contains(b, []byte("\ngoroutine ")) {
		return []string{"(no stacks)"}
	}
	return killPhases(string(b))
}

// killPhases names the write paths in progress in a goroutine dump: a
// path is in progress when a goroutine is inside its function (a goroutine
// waiting for work is not inside these).
func killPhases(dump string) []string {
	var out []string
	has := func(f string) bool { return strings.Contains(dump, f+"(") }
	pebbleFlush := has("internal/store.(*LedgerKV).MergeLedger")
	switch {
	case pebbleFlush && has("pebble/v2.(*Batch).Commit"):
		out = append(out, "ledger flush, pebble: committing its batch")
	case pebbleFlush:
		out = append(out, "ledger flush, pebble: building its batch")
	case has("internal/store.mergeLedgerDict"):
		out = append(out, "ledger flush, SQLite: dictionary insert")
	case has("internal/store.(*Store).mergeLedger"):
		out = append(out, "ledger flush, SQLite: days")
	case has("internal/store.(*Store).MergeLedger"):
		out = append(out, "ledger flush, SQLite: sorting, commit")
	}
	for _, p := range []struct{ name, fn string }{
		{"pebble memtable flush", "pebble/v2.(*DB).flush1"},
		{"pebble compaction", "pebble/v2.(*DB).compact1"},
		{"incident keeper", "internal/incident/track.(*Keeper).AlertsSaved"},
		{"store writer (alerts, findings)", "internal/store.(*Writer).flush"},
		{"checkpoint", "internal/store.(*Store).SaveCheckpoint"},
		{"spool append", "internal/spool.(*Spool).commitBatch"},
	} {
		if has(p.fn) {
			out = append(out, p.name)
		}
	}
	if len(out) == 0 {
		out = append(out, "none of these")
	}
	return out
}

func (s *server) stop(t *testing.T) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(3 * time.Minute):
		t.Fatal("serve did not stop on SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("serve exited %d on SIGTERM", code)
	}
}

// receiver is the webhook endpoint of every response action.
type receiver struct {
	mu   sync.Mutex
	keys map[string]int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	io.Copy(io.Discard, req.Body)
	r.mu.Lock()
	r.keys[req.Header.Get("Idempotency-Key")]++
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// requestBudget is how long one request may go unacknowledged.
const requestBudget = 15 * time.Minute

// run streams bodies into serve, killing it kills times at random moments.
// maxFuture is the serve's ingest.max_future in the trial's config.
var maxFuture = 720 * time.Hour

func run(t *testing.T, name string, bodies [][]byte, kills int, seed uint64) outcome {
	t.Helper()
	base := os.Getenv("HAECHI_FAULT_DIR") // keep the logs and stores
	if base == "" {
		base = t.TempDir()
	}
	dir := filepath.Join(base, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	recv := &receiver{keys: map[string]int{}}
	hook := httptest.NewServer(recv)
	defer hook.Close()
	cfgPath := writeConfig(t, dir, hook.URL)
	logPath := filepath.Join(dir, "serve.log")
	srv := startServer(t, cfgPath, logPath)
	rng := rand.New(rand.NewPCG(seed, uint64(kills)))
	o := outcome{name: name, phases: map[string]int{}}
	var phaseMu sync.Mutex
	// Kill points: request indices spread over the stream, each at a
	// random delay into that request's handling.
	killAt := map[int]time.Duration{}
	for len(killAt) < kills {
		killAt[1+rng.IntN(len(bodies)-1)] = time.Duration(rng.IntN(40)) * time.Millisecond
	}
	client := &http.Client{Timeout: time.Minute}
	var killing sync.WaitGroup
	for i, body := range bodies {
		if d, ok := killAt[i]; ok {
			// Kill while this request (or the replay, or a flush) is in
			// flight; the request is then retried on the new process.
			victim := srv
			killing.Add(1)
			go func() {
				defer killing.Done()
				time.Sleep(d)
				phases := victim.kill()
				phaseMu.Lock()
				for _, p := range phases {
					o.phases[p]++
				}
				phaseMu.Unlock()
			}()
			o.kills++
		}
		// A request answered 429 (serve is behind: spool.max_lag) waits
		// until the pipeline has taken the whole backlog — minutes on a
		// loaded machine — so the budget is time, not attempts.
		deadline := time.Now().Add(requestBudget)
		for attempt := 0; ; attempt++ {
			req, _ := http.NewRequest(http.MethodPost, srv.base+"/v1/events", bytes.NewReader(body))
			req.Header.Set("Idempotency-Key", fmt.Sprintf("%s-%d", "req", i))
			resp, err := client.Do(req)
			status := 0
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				status = resp.StatusCode
			}
			if attempt > 0 || err != nil {
				o.retries++
			}
			select {
			case <-srv.done: // killed: start again on the same data
				srv = startServer(t, cfgPath, logPath)
			default:
				time.Sleep(20 * time.Millisecond)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: request %d not acknowledged in %s (last answer: status %d, err %v); log %s", name, i, requestBudget, status, err, logPath)
			}
		}
	}
	// A kill aimed at the last requests may land after they were
	// acknowledged: wait for it, and start again if it did.
	killing.Wait()
	if len(o.phases) > 0 {
		t.Logf("%s: what the %d kills interrupted: %v", name, o.kills, o.phases)
	}
	select {
	case <-srv.done:
		srv = startServer(t, cfgPath, logPath)
	default:
	}
	finish(t, srv, dir, cfgPath, logPath, recv, &o)
	return o
}

// writeConfig writes the trial's serve configuration into dir, its
// receivers at hookURL, and returns its path.
func writeConfig(t *testing.T, dir, hookURL string) string {
	t.Helper()
	cfgPath := filepath.Join(dir, "haechi.yaml")
	engine := os.Getenv("HAECHI_FAULT_LEDGER_ENGINE")
	if engine == "" {
		engine = store.LedgerSQLite
	}
	cfg := fmt.Sprintf(`data_dir: %q
listen: 127.0.0.1:0
store:
  ledger_engine: `+engine+`
ingest:
  max_future: %s
engine:
  # Checkpoints often, so kills land before, during and after them and
  # restarts resume from them.
  checkpoint_every: 200ms
  # The outcome must depend on the events alone: an origin idle across a
  # slow restart (a loaded machine) would have its event time advanced by
  # the wall clock, which a clean run never sees.
  idleness: 1000h
spool:
  max_bytes: 8589934592
  retain_bytes: 8522825728
respond:
  mode: enforce
  secret: fault-trial-secret
  initial_backoff: 50ms
  max_backoff: 500ms
  lease: 3s
  receivers:
    revoke_key: {url: %q, timeout: 1s, allow_private: true}
    revoke_token: {url: %q, timeout: 1s, allow_private: true}
    block_source: {url: %q, timeout: 1s, allow_private: true}
    disable_identity: {url: %q, timeout: 1s, allow_private: true}
    notify: {url: %q, timeout: 1s, allow_private: true}
`, filepath.Join(dir, "data"), maxFuture, hookURL, hookURL, hookURL, hookURL, hookURL)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath
}

// finish lets srv's pipeline take everything, stops it gracefully
// (windows close, the store is flushed) and lets deliveries finish, then
// reads the store into o.
func finish(t *testing.T, srv *server, dir, cfgPath, logPath string, recv *receiver, o *outcome) {
	t.Helper()
	waitDrained(t, srv.base)
	srv.stop(t)
	// A last start delivers what the previous one had not (a clean stop
	// does not wait for slow receivers); it replays the spool, which
	// must change nothing.
	srv = startServer(t, cfgPath, logPath)
	waitDrained(t, srv.base)
	waitDelivered(t, filepath.Join(dir, "data"), recv)
	srv.stop(t)

	o.delivered = recv.keys
	readStore(t, filepath.Join(dir, "data"), o)
}

// TestFaultTrialFinish finishes the trial kept in HAECHI_FAULT_RESUME (a
// HAECHI_FAULT_DIR whose trial stopped after every request was
// acknowledged, say in a drain the harness gave up on) as TestFaultTrial
// would have — start, drain, stop, start, drain, deliver, stop — with the
// same settings (HAECHI_FAULT_DAYS, HAECHI_FAULT_LEDGER_ENGINE), and
// compares it with the kept clean run.
func TestFaultTrialFinish(t *testing.T) {
	base := os.Getenv("HAECHI_FAULT_RESUME")
	if base == "" {
		t.Skip("HAECHI_FAULT_RESUME names no kept trial")
	}
	maxFuture = time.Duration(envInt(t, "HAECHI_FAULT_DAYS", 1)+10) * 24 * time.Hour
	dir := filepath.Join(base, "trial")
	recv := &receiver{keys: map[string]int{}}
	hook := httptest.NewServer(recv)
	defer hook.Close()
	cfgPath := writeConfig(t, dir, hook.URL)
	logPath := filepath.Join(dir, "serve.log")
	trial := outcome{name: "trial"}
	finish(t, startServer(t, cfgPath, logPath), dir, cfgPath, logPath, recv, &trial)
	clean := outcome{name: "clean"}
	readStore(t, filepath.Join(base, "clean", "data"), &clean)
	t.Logf("clean: %s", clean.summary())
	t.Logf("trial: %s", trial.summary())
	compare(t, clean, trial)
}

// waitDrained waits until serve has taken every stored request and its
// engine queues are empty. A start replays the whole retained spool (a
// million events in the long trial: minutes on a loaded machine), so it
// gives up only when no event was processed for 5 minutes.
func waitDrained(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	processed := -1.0
	for time.Now().Before(deadline) {
		m := metrics(t, base)
		if m["haechi_spool_pending_records"] == 0 && m["haechi_queue_depth_events"] == 0 {
			time.Sleep(500 * time.Millisecond) // the store writer's batch
			return
		}
		if p := m["haechi_events_processed_total"]; p > processed {
			processed, deadline = p, time.Now().Add(5*time.Minute)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("serve did not drain: no event processed for 5 minutes (%.0f in all)", processed)
}

func metrics(t *testing.T, base string) map[string]float64 {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok || strings.Contains(name, "{") {
			continue
		}
		f, _ := strconv.ParseFloat(val, 64)
		out[name] = f
	}
	return out
}

// waitDelivered waits until no action in the outbox is waiting for
// delivery.
func waitDelivered(t *testing.T, dataDir string, recv *receiver) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		db := openDB(t, dataDir)
		var n int
		err := db.QueryRow(`SELECT count(*) FROM actions WHERE state IN ('planned', 'delivering', 'failed')`).Scan(&n)
		db.Close()
		if err == nil && n == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("actions not delivered in 2 minutes")
}

func openDB(t *testing.T, dataDir string) *sql.DB {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dataDir, "*.db"))
	if len(matches) != 1 {
		t.Fatalf("store in %s: %v", dataDir, matches)
	}
	db, err := sql.Open("sqlite", "file:"+matches[0]+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// readStore reads what the run stored, leaving out wall-clock columns.
func readStore(t *testing.T, dataDir string, o *outcome) {
	t.Helper()
	db := openDB(t, dataDir)
	defer db.Close()
	o.alerts = rows(t, db, `SELECT id, time, entity_kind, entity_id, detector, severity, score, title, explanation,
		state, window_start, window_end, last_time, finding_count FROM alerts ORDER BY id`)
	o.findings = rows(t, db, `SELECT alert_id, detector, kind, entity_kind, entity_id, time, score, explanation, evidence, tags, related
		FROM findings ORDER BY alert_id, time, kind, entity_id, evidence`)
	// Incident notices (kind incident) are compared apart: an incident
	// absorbed in the batch that founds it is announced only on the
	// survivor, so which notices exist depends on how a restart cut the
	// batches; the incidents themselves must not.
	o.actions = rows(t, db, `SELECT id, kind, target, alert_id, playbook, state, reason, created_at FROM actions WHERE kind <> 'incident' ORDER BY id`)
	o.incidents = rows(t, db, `SELECT alert_id, incident_id FROM incident_alerts ORDER BY alert_id`)
	o.unannounced = rows(t, db, `SELECT DISTINCT incident_id FROM incident_alerts WHERE incident_id NOT IN
		(SELECT target FROM actions WHERE kind = 'incident') ORDER BY incident_id`)
	// The incidents the keeper wrote (it remembers what it read and wrote
	// between batches): everything but the wall-clock columns and the
	// analyst's verdict, which no run sets.
	o.incidentRows = rows(t, db, `SELECT id, founder, start_time, end_time, severity, state, title, attack, alert_count,
		entities, body FROM incidents ORDER BY id`)
	// What later alerts join incidents through: each alert's join keys
	// (the keeper leaves keys it has written alone) and the cited events'
	// facts (first citation wins).
	o.incidentKeys = rows(t, db, `SELECT join_key, alert_id, cited FROM incident_keys ORDER BY join_key, alert_id`)
	o.citations = rows(t, db, `SELECT * FROM citations ORDER BY ref`)
	// The ledger through the store's API, whichever engine keeps it
	// (HAECHI_FAULT_LEDGER_ENGINE), by dimension, value, day, type, field.
	st, err := store.Open(t.Context(), dataDir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// A cell's records are compared by record id, through the dictionary:
	// its numbers differ between runs (shards number ids as they meet
	// them), so a cell's count alone would not see a record stored under
	// another record's number, or a number whose entry a kill lost.
	entries, err := st.LoadLedgerDict(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	names := make(map[uint32]string, len(entries))
	numbered := make(map[string]uint32, len(entries))
	for _, e := range entries {
		if n, ok := numbered[e.RID]; ok {
			o.dictErrs = append(o.dictErrs, fmt.Sprintf("%q numbered %d and %d", e.RID, n, e.ID))
		}
		names[e.ID], numbered[e.RID] = e.RID, e.ID
		o.dict = append(o.dict, e.RID)
	}
	slices.Sort(o.dict)
	dims := slices.Clone(ledger.Dimensions)
	slices.Sort(dims)
	var ids []string
	for _, dim := range dims {
		rs, err := st.LedgerRows(t.Context(), string(dim), nil, math.MinInt32, math.MaxInt32)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			b := roaring.New()
			if _, err := b.FromBuffer(r.Bitmap); err != nil {
				t.Fatal(err)
			}
			ids = ids[:0]
			for it := b.Iterator(); it.HasNext(); {
				v := it.Next()
				if v < ledger.DictBase {
					ids = append(ids, strconv.FormatUint(uint64(v), 10))
					continue
				}
				name, ok := names[v]
				if !ok {
					o.dictErrs = append(o.dictErrs, fmt.Sprintf("%s %s day %d %s %s: number %d has no entry", r.Dim, r.Value, r.Day, r.RType, r.Field, v))
					name = fmt.Sprintf("#%d", v)
				}
				ids = append(ids, name)
			}
			slices.Sort(ids)
			h := fnv.New64a()
			for _, id := range ids {
				h.Write([]byte(id))
				h.Write([]byte{0})
			}
			o.ledger = append(o.ledger, fmt.Sprintf("%s %s %d %s %s n=%d ids=%016x %d %d", r.Dim, r.Value, r.Day, r.RType, r.Field, len(ids), h.Sum64(), r.First, r.Last))
		}
	}
}

func rows(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	q, err := db.Query(query)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	cols, _ := q.Columns()
	var out []string
	for q.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := q.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.TrimSpace(fmt.Sprintln(vals...)))
	}
	return out
}
