package respond

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/alertfmt"
	"github.com/haechi-sec/haechi/internal/detect/canary"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// fakeES answers _bulk like Elasticsearch: it keeps documents by _id
// (create: 409 when the id exists), refuses a document whose alert id is
// "bad" as its mapping would (400), and rejects with 429 each document the
// reject function names, once.
type fakeES struct {
	t        *testing.T
	mu       sync.Mutex
	docs     map[string]map[string]any
	requests [][]string // _ids per bulk request
	reject   map[string]bool
	down     atomic.Bool
}

func newFakeES(t *testing.T) (*fakeES, *httptest.Server) {
	es := &fakeES{t: t, docs: map[string]map[string]any{}, reject: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(es.serve))
	t.Cleanup(srv.Close)
	return es, srv
}

func (es *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/_bulk" || r.Header.Get("Content-Type") != "application/x-ndjson" {
		es.t.Errorf("request %s %s", r.URL.Path, r.Header.Get("Content-Type"))
	}
	if es.down.Load() {
		http.Error(w, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	es.mu.Lock()
	defer es.mu.Unlock()
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<24)
	var ids []string
	var items []string
	for sc.Scan() {
		var meta struct {
			Create struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			} `json:"create"`
		}
		if err := json.Unmarshal(sc.Bytes(), &meta); err != nil || meta.Create.ID == "" {
			es.t.Errorf("bulk action line %q: %v", sc.Bytes(), err)
			return
		}
		if !sc.Scan() {
			es.t.Error("bulk body ends after an action line")
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			es.t.Errorf("bulk document: %v", err)
			return
		}
		id := meta.Create.ID
		ids = append(ids, id)
		alertID, _ := doc["event"].(map[string]any)["id"].(string)
		switch {
		case alertID == "bad":
			items = append(items, `{"create":{"_id":"`+id+`","status":400,"error":{"type":"document_parsing_exception","reason":"failed to parse"}}}`)
		case es.reject[alertID]:
			delete(es.reject, alertID)
			items = append(items, `{"create":{"_id":"`+id+`","status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}}`)
		case es.docs[id] != nil:
			items = append(items, `{"create":{"_id":"`+id+`","status":409,"error":{"type":"version_conflict_engine_exception","reason":"document already exists"}}}`)
		default:
			es.docs[id] = doc
			items = append(items, `{"create":{"_id":"`+id+`","result":"created","status":201}}`)
		}
	}
	es.requests = append(es.requests, ids)
	io.WriteString(w, `{"took":1,"errors":true,"items":[`+strings.Join(items, ",")+`]}`)
}

func (es *fakeES) snapshot() (docs map[string]map[string]any, requests [][]string) {
	es.mu.Lock()
	defer es.mu.Unlock()
	docs = map[string]map[string]any{}
	for k, v := range es.docs {
		docs[k] = v
	}
	return docs, append([][]string(nil), es.requests...)
}

func sinkConfig(url string) Config {
	c := DefaultConfig() // dry-run: exports go out all the same
	c.Playbooks = nil
	c.Sinks = map[string]SinkConfig{"siem": {Type: SinkElasticsearch, URL: url, AllowPrivate: true}}
	c.InitialBackoff = Duration(20 * time.Millisecond)
	c.MaxBackoff = Duration(80 * time.Millisecond)
	return c
}

// Alerts reach Elasticsearch through the outbox: a document the bulk
// answer rejects with 429 is retried alone and delivered; one the mapping
// refuses (400) is dead at once, not retried; a closed alert is exported
// again as closed; nothing is indexed twice.
func TestSinkExportsThroughOutbox(t *testing.T) {
	es, srv := newFakeES(t)
	es.reject["a2"] = true
	st := openStore(t, t.TempDir())
	h := start(t, st, sinkConfig(srv.URL), time.Minute)
	a1 := sinkAlert("a1", event.EntitySource, "198.51.100.1", event.SeverityCritical, t0)
	a2 := sinkAlert("a2", event.EntitySource, "198.51.100.2", event.SeverityHigh, t0.Add(time.Minute))
	bad := sinkAlert("bad", event.EntitySource, "198.51.100.3", event.SeverityHigh, t0.Add(2*time.Minute))
	h.send(t, a1, a2, bad)
	waitFor(t, "exports", 10*time.Second, func() bool {
		return len(byState(t, st, StateDelivered)) == 2 && len(byState(t, st, StateDead)) == 1
	})
	dead := byState(t, st, StateDead)[0]
	if dead.AlertID != "bad" || dead.Kind != KindExport || !strings.Contains(dead.LastError, "refuses this document") {
		t.Errorf("dead: %+v", dead)
	}
	docs, reqs := es.snapshot()
	if len(docs) != 2 {
		t.Fatalf("%d documents indexed, want 2", len(docs))
	}
	// The first request carried all three; every later one only the
	// rejected a2 — never a1 (delivered) nor bad (dead).
	if len(reqs) < 2 || len(reqs[0]) != 3 {
		t.Fatalf("requests %v", reqs)
	}
	a2id := ActionID("a2", KindExport, "siem\x00open\x001\x00high\x00"+itoa(a2.LastTime.UnixNano()))
	for _, r := range reqs[1:] {
		if len(r) != 1 || r[0] != a2id {
			t.Errorf("retry request %v, want only a2's export %s", r, a2id)
		}
	}
	for id, d := range docs {
		ev := d["event"].(map[string]any)
		if ev["kind"] != "alert" || ev["action"] != "alert-created" || d["threat"] == nil {
			t.Errorf("doc %s: %v", id, d)
		}
	}
	// Closing a1 exports it once more, as closed.
	a1.State = "closed"
	h.resp.Alert(alert.Closed, a1)
	if err := h.resp.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "closed export", 10*time.Second, func() bool { return len(byState(t, st, StateDelivered)) == 3 })
	docs, _ = es.snapshot()
	closed := 0
	for _, d := range docs {
		if d["event"].(map[string]any)["action"] == "alert-closed" {
			closed++
		}
	}
	if len(docs) != 3 || closed != 1 {
		t.Errorf("%d docs, %d closed; want 3 and 1", len(docs), closed)
	}
}

// sinkAlert is mkAlert with the finding's severity set, as detectors set it.
func sinkAlert(id string, kind event.EntityKind, entity string, sev event.Severity, at time.Time) event.Alert {
	a := mkAlert(id, kind, entity, canary.Name, sev, at)
	a.Findings[0].Severity = sev
	a.FindingCount, a.LastTime, a.WindowStart = 1, at, at
	return a
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// Exports written while the SIEM is down are delivered by the next run
// (a restart), each once.
func TestSinkExportsSurviveRestart(t *testing.T) {
	es, srv := newFakeES(t)
	es.down.Store(true)
	dir := t.TempDir()
	st := openStore(t, dir)
	h := start(t, st, sinkConfig(srv.URL), time.Minute)
	h.send(t, sinkAlert("a1", event.EntitySource, "198.51.100.1", event.SeverityCritical, t0),
		sinkAlert("a2", event.EntitySource, "198.51.100.2", event.SeverityCritical, t0))
	waitFor(t, "failed attempts", 5*time.Second, func() bool { return len(byState(t, st, StateFailed)) == 2 })
	h.stop()
	es.down.Store(false)
	h2 := start(t, st, sinkConfig(srv.URL), time.Minute)
	// The restarted planner plans nothing new for the same alerts.
	p, _ := NewPlanner(sinkConfig(srv.URL))
	if _, err := p.RestoreFrom(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	if acts := p.Exports(sinkAlert("a1", event.EntitySource, "198.51.100.1", event.SeverityCritical, t0)); len(acts) != 0 {
		t.Errorf("re-planned %d exports after restore", len(acts))
	}
	waitFor(t, "delivery after restart", 10*time.Second, func() bool { return len(byState(t, st, StateDelivered)) == 2 })
	if docs, _ := es.snapshot(); len(docs) != 2 {
		t.Errorf("%d docs, want 2", len(docs))
	}
	h2.stop()
}

// A withdrawn alert's export reports it closed and withdrawn; exports of a
// suppressed alert are not planned (its responder skips Plan and Exports
// alike, tested through Exports' contract here).
func TestExportsLifecycle(t *testing.T) {
	p, err := NewPlanner(sinkConfig("http://siem.example:9200"))
	if err != nil {
		t.Fatal(err)
	}
	a := sinkAlert("a1", event.EntityPrincipal, "u:1", event.SeverityHigh, t0)
	var changes []string
	for _, step := range []func(){
		func() {},
		func() { a.FindingCount, a.LastTime = 2, t0.Add(time.Minute) },
		func() {}, // nothing changed: nothing planned
		func() { a.State = event.AlertWithdrawn },
	} {
		step()
		for _, act := range p.Exports(a) {
			var pl Payload
			if err := json.Unmarshal(act.Payload, &pl); err != nil || pl.Full == nil || act.State != StatePlanned || act.Receiver != "siem" {
				t.Fatalf("export %+v: %v", act, err)
			}
			changes = append(changes, pl.Change+"/"+string(pl.Full.State))
		}
	}
	if got := strings.Join(changes, ","); got != "created/open,updated/open,closed/withdrawn" {
		t.Errorf("changes %s", got)
	}
	if IsContainment(KindExport) || IsContainment(KindIncident) || !IsContainment(KindBlockSource) {
		t.Error("IsContainment")
	}
}

// A webhook receiver in ecs or ocsf format gets the action's whole alert
// in that format with the action beside it.
func TestWebhookFormats(t *testing.T) {
	for _, format := range []string{alertfmt.FormatECS, alertfmt.FormatOCSF} {
		cfg := testConfig("https://hooks.example")
		r := cfg.Receivers[KindNotify]
		r.Format = format
		cfg.Receivers[KindNotify] = r
		p, err := NewPlanner(cfg)
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDispatcher(nil, cfg, DispatcherOptions{Version: "v9"})
		if err != nil {
			t.Fatal(err)
		}
		a := sinkAlert("a1", event.EntitySource, "198.51.100.1", event.SeverityCritical, t0)
		var body []byte
		for _, act := range p.Plan(a) {
			if act.Kind == KindNotify {
				if body, err = d.Body(act.Receiver, act); err != nil {
					t.Fatal(err)
				}
			}
		}
		var doc map[string]any
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: %v %s", format, err, body)
		}
		var action map[string]any
		switch format {
		case alertfmt.FormatECS:
			if doc["event"].(map[string]any)["kind"] != "alert" || doc["source"].(map[string]any)["ip"] != "198.51.100.1" {
				t.Errorf("ecs body %s", body)
			}
			action = doc["haechi"].(map[string]any)["action"].(map[string]any)
		case alertfmt.FormatOCSF:
			if doc["class_uid"] != 2004.0 || !bytes.Contains(body, []byte(`"T1213"`)) {
				t.Errorf("ocsf body %s", body)
			}
			action = doc["unmapped"].(map[string]any)["haechi"].(map[string]any)["action"].(map[string]any)
		}
		if action["kind"] != KindNotify || action["mode"] != string(ModeEnforce) {
			t.Errorf("%s action %v", format, action)
		}
	}
}

func TestSinkConfigValidate(t *testing.T) {
	for _, c := range []struct {
		sinks     map[string]SinkConfig
		receivers map[string]Receiver
		want      string // "" valid
	}{
		{map[string]SinkConfig{"es": {Type: "elasticsearch", URL: "https://es.example:9200", APIKeyEnv: "K"}}, nil, ""},
		{map[string]SinkConfig{"hec": {Type: "splunk", URL: "https://splunk.example:8088", TokenEnv: "T", Format: "ocsf"}}, nil, ""},
		{map[string]SinkConfig{"sys": {Type: "syslog", Address: "siem.example:6514", TLS: true, Facility: "local4"}}, nil, ""},
		{map[string]SinkConfig{"x": {}}, nil, "sinks.x.type: required"},
		{map[string]SinkConfig{"x": {Type: "kafka"}}, nil, `sinks.x.type: unknown type "kafka"`},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "es:9200"}}, nil, "sinks.x.url: must be an http:// or https:// URL"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "http://10.0.0.5:9200"}}, nil, "set allow_private: true"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "http://10.0.0.5:9200", AllowPrivate: true}}, nil, ""},
		// A credential over plain http:// is readable on the path; a
		// loopback collector may take it, nothing else.
		{map[string]SinkConfig{"x": {Type: "splunk", URL: "http://splunk.example:8088", TokenEnv: "T"}}, nil, "sinks.x.url: http:// would send the HEC token (token_env) in clear text"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "http://10.0.0.5:9200", AllowPrivate: true, APIKeyEnv: "K"}}, nil, "sinks.x.url: http:// would send the API key"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "HTTP://es.example", Username: "u", PasswordEnv: "P"}}, nil, "http:// would send the password"},
		{map[string]SinkConfig{"x": {Type: "splunk", URL: "http://127.0.0.1:8088", TokenEnv: "T", AllowPrivate: true}}, nil, ""},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "http://localhost:9200", APIKeyEnv: "K", AllowPrivate: true}}, nil, ""},
		// The sink appends its API path: a query would swallow it. A
		// password in the URL would be echoed by messages and logs.
		{map[string]SinkConfig{"x": {Type: "splunk", URL: "https://splunk.example:8088?x=1", TokenEnv: "T"}}, nil, "sinks.x.url: must be the base URL, without a query"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "https://es.example#frag"}}, nil, "sinks.x.url: must be the base URL, without a query"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "https://es.example:9200/prefix"}}, nil, ""},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "https://elastic:PWSECRET@es.example:9200"}}, nil, "sinks.x.url: holds credentials"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "https://es.example", Username: "u"}}, nil, "sinks.x.username: username and password_env go together"},
		{map[string]SinkConfig{"x": {Type: "elasticsearch", URL: "https://es.example", Format: "cef"}}, nil, `sinks.x.format: unknown format "cef"`},
		{map[string]SinkConfig{"x": {Type: "splunk", URL: "https://splunk.example"}}, nil, "sinks.x.token_env: required"},
		{map[string]SinkConfig{"x": {Type: "syslog", Address: "siem.example"}}, nil, "sinks.x.address: want host:port"},
		{map[string]SinkConfig{"x": {Type: "syslog", Address: "127.0.0.1:514"}}, nil, "loopback address; set allow_private"},
		{map[string]SinkConfig{"x": {Type: "syslog", Address: "siem.example:514", Network: "udp", TLS: true}}, nil, "sinks.x.tls: TLS runs over tcp"},
		{map[string]SinkConfig{"x": {Type: "syslog", Address: "siem.example:514", Facility: "local9"}}, nil, `sinks.x.facility: unknown facility "local9"`},
		{map[string]SinkConfig{"x": {Type: "syslog", Address: "siem.example:514", URL: "http://x"}}, nil, "sinks.x.url: not a setting of a syslog sink"},
		{map[string]SinkConfig{"notify": {Type: "elasticsearch", URL: "https://es.example"}},
			map[string]Receiver{"notify": {URL: "https://hooks.example"}}, "sinks.notify: a receiver has this name too"},
		{nil, map[string]Receiver{"n": {URL: "https://hooks.example", Format: "xml"}}, `receivers.n.format: unknown format "xml"`},
		{nil, map[string]Receiver{"n": {URL: "https://hooks.example", Format: "ecs", BodyTemplate: "{}"}}, "receivers.n.format: ecs and body_template exclude each other"},
		{nil, map[string]Receiver{"n": {URL: "https://hooks.example", Format: "ocsf", Type: ReceiverSlack}}, "receivers.n.format: a slack receiver"},
	} {
		cfg := DefaultConfig()
		cfg.Sinks, cfg.Receivers = c.sinks, c.receivers
		if c.receivers != nil {
			cfg.Secret = "s"
		}
		err := cfg.Validate()
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%+v: %v", c.sinks, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%+v %+v: got %v, want %q", c.sinks, c.receivers, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "PWSECRET") {
			t.Errorf("the message shows the URL's password: %v", err)
		}
	}
	// A secret named but empty fails at start, naming the variable.
	cfg := DefaultConfig()
	cfg.Sinks = map[string]SinkConfig{"hec": {Type: "splunk", URL: "https://splunk.example", TokenEnv: "HAECHI_TEST_EMPTY_HEC_TOKEN"}}
	t.Setenv("HAECHI_TEST_EMPTY_HEC_TOKEN", "")
	if _, err := NewDispatcher((*store.Store)(nil), cfg, DispatcherOptions{}); err == nil || !strings.Contains(err.Error(), "HAECHI_TEST_EMPTY_HEC_TOKEN") {
		t.Errorf("empty token: %v", err)
	}
}

// The dispatcher counts each export's result per sink and times each
// batch.
func TestSinkMetrics(t *testing.T) {
	es, srv := newFakeES(t)
	es.reject["a2"] = true
	st := openStore(t, t.TempDir())
	cfg := sinkConfig(srv.URL)
	p, err := NewPlanner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	d, err := NewDispatcher(st, cfg, DispatcherOptions{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	var acts []Action
	for _, id := range []string{"a1", "a2", "bad"} {
		acts = append(acts, p.Exports(sinkAlert(id, event.EntitySource, "198.51.100.1", event.SeverityHigh, t0))...)
	}
	if _, err := st.InsertActions(t.Context(), acts, time.Now()); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.ClaimDueActions(t.Context(), time.Now(), time.Minute, 10)
	if err != nil || len(claimed) != 3 {
		t.Fatalf("claimed %d: %v", len(claimed), err)
	}
	d.export(t.Context(), "siem", claimed)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] != SinkElasticsearch || labels["receiver"] != "siem" {
				t.Errorf("%s labels %v", mf.GetName(), labels)
			}
			switch mf.GetName() {
			case "haechi_respond_deliveries_total":
				got[labels["result"]] = m.GetCounter().GetValue()
			case "haechi_respond_delivery_seconds":
				got["batches"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	if want := map[string]float64{"delivered": 1, "failed": 1, "dead": 1, "batches": 1}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("metrics %v, want %v", got, want)
	}
}
