package sink

import (
	"bufio"
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (run with -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var t0 = time.Date(2025, 6, 24, 18, 43, 11, 250_000_000, time.UTC)

func items(n int) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{ID: fmt.Sprintf("act-%d", i), Time: t0.Add(time.Duration(i) * time.Second), Severity: 4 - i%4,
			Doc: []byte(fmt.Sprintf(`{"@timestamp":"%s","event":{"kind":"alert","id":"al-%d"}}`, t0.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), i))}
	}
	return out
}

// exchange is one recorded request and the answer the test server gives.
type recorder struct {
	mu     sync.Mutex
	reqs   []*http.Request
	bodies [][]byte
	answer func(n int, body []byte) (int, string)
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.bodies = append(r.bodies, b)
	n := len(r.reqs)
	r.mu.Unlock()
	status, body := r.answer(n, b)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

func states(errs []error) string {
	var b []string
	for _, e := range errs {
		switch {
		case e == nil:
			b = append(b, "ok")
		case IsPermanent(e):
			b = append(b, "permanent")
		default:
			b = append(b, "retry")
		}
	}
	return strings.Join(b, ",")
}

// A bulk of four: created, rejected with 429, refused by the mapping (400)
// and already there (409, a retry of a delivered document). The retry
// sends only the 429 item, which is then created.
func TestElasticsearchBulk(t *testing.T) {
	rec := &recorder{answer: func(n int, body []byte) (int, string) {
		if n == 1 {
			return 200, `{"took":30,"errors":true,"items":[` +
				`{"create":{"_index":".ds-haechi-alerts-2025.06.24-000001","_id":"act-0","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},` +
				`{"create":{"_index":".ds-haechi-alerts-2025.06.24-000001","_id":"act-1","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},` +
				`{"create":{"_index":".ds-haechi-alerts-2025.06.24-000001","_id":"act-2","status":400,"error":{"type":"document_parsing_exception","reason":"[1:42] failed to parse field [event.severity] of type [long]"}}},` +
				`{"create":{"_index":".ds-haechi-alerts-2025.06.24-000001","_id":"act-3","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[act-3]: version conflict, document already exists (current version [1])"}}}]}`
		}
		return 200, `{"took":3,"errors":false,"items":[{"create":{"_index":".ds-haechi-alerts-2025.06.24-000001","_id":"act-1","_version":1,"result":"created","status":201}}]}`
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	es := &Elasticsearch{URL: srv.URL + "/", Index: "haechi-alerts", Client: srv.Client(),
		Header: http.Header{"Authorization": {"ApiKey c2VjcmV0"}}}
	its := items(4)
	errs := es.Send(context.Background(), its)
	if got := states(errs); got != "ok,retry,permanent,ok" {
		t.Fatalf("results %s: %v", got, errs)
	}
	if !strings.Contains(errs[1].Error(), "es_rejected_execution_exception") || !strings.Contains(errs[2].Error(), "event.severity") {
		t.Errorf("reasons: %v", errs)
	}
	if errs := es.Send(context.Background(), its[1:2]); states(errs) != "ok" {
		t.Fatalf("retry: %v", errs)
	}
	req := rec.reqs[0]
	if req.Method != http.MethodPost || req.URL.Path != "/_bulk" || req.Header.Get("Content-Type") != "application/x-ndjson" ||
		req.Header.Get("Authorization") != "ApiKey c2VjcmV0" {
		t.Errorf("request %s %s %v", req.Method, req.URL.Path, req.Header)
	}
	golden(t, "elasticsearch-bulk.golden", append(append([]byte{}, rec.bodies[0]...), rec.bodies[1]...))

	// The whole request refused: every item retried.
	for _, c := range []struct {
		status int
		body   string
	}{
		{429, `{"error":{"root_cause":[{"type":"es_rejected_execution_exception"}]},"status":429}`},
		{503, `{"error":"unavailable"}`},
		{200, `{"errors":false,"items":[]}`}, // answers for no item
		{200, `not json`},
	} {
		rec.answer = func(int, []byte) (int, string) { return c.status, c.body }
		if got := states(es.Send(context.Background(), its[:2])); got != "retry,retry" {
			t.Errorf("answer %d %s: %s, want every item retried", c.status, c.body, got)
		}
	}
}

// A HEC batch of three whose second event HEC cannot parse: the first is
// delivered, the second refused for good, the third retried; HEC busy
// retries all.
func TestSplunkHEC(t *testing.T) {
	rec := &recorder{answer: func(n int, body []byte) (int, string) {
		if n == 1 {
			return 400, `{"text":"Invalid data format","code":6,"invalid-event-number":1}`
		}
		return 503, `{"text":"Server is busy","code":9}`
	}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	hec := &Splunk{URL: srv.URL, Token: "11111111-2222-3333-4444-555555555555", Index: "security", Sourcetype: "haechi:alert:ecs",
		Host: "haechi-1", Client: srv.Client()}
	errs := hec.Send(context.Background(), items(3))
	if got := states(errs); got != "ok,permanent,retry" {
		t.Fatalf("results %s: %v", got, errs)
	}
	req := rec.reqs[0]
	if req.URL.Path != "/services/collector/event" || req.Header.Get("Authorization") != "Splunk 11111111-2222-3333-4444-555555555555" {
		t.Errorf("request %s %v", req.URL.Path, req.Header)
	}
	golden(t, "splunk-hec.golden", rec.bodies[0])
	if got := states(hec.Send(context.Background(), items(2))); got != "retry,retry" {
		t.Errorf("busy: %s", got)
	}
	rec.answer = func(int, []byte) (int, string) { return 200, `{"text":"Success","code":0}` }
	if got := states(hec.Send(context.Background(), items(2))); got != "ok,ok" {
		t.Errorf("success: %s", got)
	}
}

// rfc5424 parses one message: PRI, VERSION, TIMESTAMP, HOSTNAME,
// APP-NAME, PROCID, MSGID, STRUCTURED-DATA (only the nil value) and MSG.
var rfc5424 = regexp.MustCompile(`^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?(?:Z|[+-]\d\d:\d\d)) (\S{1,255}) (\S{1,48}) (\S{1,128}) (\S{1,32}) (-) (.*)$`)

type message struct {
	pri                          int
	ts, host, app, procid, msgid string
	msg                          string
}

func parse5424(t *testing.T, b []byte) message {
	t.Helper()
	m := rfc5424.FindSubmatch(b)
	if m == nil {
		t.Fatalf("not an RFC 5424 message: %q", b)
	}
	pri, _ := strconv.Atoi(string(m[1]))
	if _, err := time.Parse(time.RFC3339Nano, string(m[2])); err != nil {
		t.Errorf("timestamp %s: %v", m[2], err)
	}
	return message{pri, string(m[2]), string(m[3]), string(m[4]), string(m[5]), string(m[6]), string(m[8])}
}

// readOctetCounted reads RFC 6587 octet-counted frames until EOF.
func readOctetCounted(t *testing.T, r io.Reader) [][]byte {
	t.Helper()
	br := bufio.NewReader(r)
	var out [][]byte
	for {
		lenStr, err := br.ReadString(' ')
		if err == io.EOF && lenStr == "" {
			return out
		}
		if err != nil {
			t.Errorf("frame length: %v (%q)", err, lenStr)
			return out
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenStr, " "))
		if err != nil || n <= 0 || lenStr[0] == '0' {
			t.Errorf("bad frame length %q", lenStr)
			return out
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Errorf("frame of %d: %v", n, err)
			return out
		}
		out = append(out, b)
	}
}

func TestSyslogTCP(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[useTLS], func(t *testing.T) {
			var ln net.Listener
			var err error
			var clientTLS *tls.Config
			if useTLS {
				hs := httptest.NewTLSServer(http.NotFoundHandler())
				defer hs.Close()
				ln, err = tls.Listen("tcp", "127.0.0.1:0", hs.TLS)
				clientTLS = hs.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
				clientTLS.ServerName = "example.com"
			} else {
				ln, err = net.Listen("tcp", "127.0.0.1:0")
			}
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			got := make(chan [][]byte, 1)
			go func() {
				c, err := ln.Accept()
				if err != nil {
					got <- nil
					return
				}
				defer c.Close()
				got <- readOctetCounted(t, c)
			}()
			s := &Syslog{Network: "tcp", Address: ln.Addr().String(), TLS: clientTLS, Facility: 4, Hostname: "haechi 1", MsgID: "ecs"}
			its := items(4)
			its[1].Doc = []byte(`{"message":"line one\nline two ünïcode"}`)
			if errs := s.Send(context.Background(), its); states(errs) != "ok,ok,ok,ok" {
				t.Fatalf("send: %v", errs)
			}
			frames := <-got
			if len(frames) != 4 {
				t.Fatalf("%d frames, want 4", len(frames))
			}
			for i, f := range frames {
				m := parse5424(t, f)
				wantPri := 4*8 + []int{2, 3, 4, 5}[i%4] // severity 4,3,2,1 → crit, err, warning, notice
				if m.pri != wantPri || m.host != "haechi1" || m.app != "haechi" || m.procid != "-" || m.msgid != "ecs" || m.msg != string(its[i].Doc) {
					t.Errorf("frame %d: %+v", i, m)
				}
			}
			if !useTLS {
				var all []byte
				for _, f := range frames {
					all = append(append(all, strconv.Itoa(len(f))+" "...), f...)
				}
				golden(t, "syslog-tcp.golden", all)
			}
		})
	}
}

func TestSyslogUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	s := &Syslog{Network: "udp", Address: pc.LocalAddr().String(), Facility: 10}
	its := items(3)
	its[2].Doc = []byte(`"` + strings.Repeat("x", MaxUDPMessage) + `"`)
	if got := states(s.Send(context.Background(), its)); got != "ok,ok,permanent" {
		t.Fatalf("send: %s", got)
	}
	buf := make([]byte, 70000)
	for i := range 2 {
		_ = pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		m := parse5424(t, buf[:n])
		if m.pri != 10*8+[]int{2, 3}[i] || m.host != "-" || m.msgid != "-" || m.msg != string(its[i].Doc) {
			t.Errorf("datagram %d: %+v", i, m)
		}
	}
}

// A receiver that is down: every item retried.
func TestSyslogRefused(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	s := &Syslog{Network: "tcp", Address: addr}
	if got := states(s.Send(context.Background(), items(2))); got != "retry,retry" {
		t.Errorf("refused: %s", got)
	}
}
