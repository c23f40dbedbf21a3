package sink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rsyslogBinary finds Debian's rsyslogd (.ci/run installs rsyslog; its
// service is never started there).
func rsyslogBinary(t *testing.T) string {
	for _, p := range []string{"rsyslogd", "/usr/sbin/rsyslogd"} {
		if b, err := exec.LookPath(p); err == nil {
			return b
		}
	}
	t.Skip("rsyslogd is not installed (apt-get install rsyslog); .ci/run installs it")
	return ""
}

// rsyslogConf is a throwaway rsyslog: no system config, no imuxsock or
// imklog, imtcp and imudp on loopback, and one omfile action writing the
// properties rsyslog's RFC 5424 parser found, one message a line (MSG
// JSON-escaped besides). rsyslog's defaults are kept, so it escapes a
// control character it receives as #ooo (octal): a newline as #012, NUL
// as #000.
const rsyslogConf = `
global(workDirectory="%[1]s")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" port="%[2]d" address="127.0.0.1")
input(type="imudp" port="%[3]d" address="127.0.0.1")
template(name="fields" type="list") {
  property(name="inputname") constant(value="|")
  property(name="pri") constant(value="|")
  property(name="timereported" dateFormat="rfc3339") constant(value="|")
  property(name="hostname") constant(value="|")
  property(name="app-name") constant(value="|")
  property(name="procid") constant(value="|")
  property(name="msgid") constant(value="|")
  property(name="structured-data") constant(value="|")
  property(name="msg" format="json") constant(value="\n")
}
action(type="omfile" file="%[1]s/out.log" template="fields")
`

// startRsyslog runs rsyslogd in the foreground on free loopback ports and
// returns its TCP and UDP addresses and the file it writes to; it is killed
// when the test ends.
func startRsyslog(t *testing.T) (tcpAddr, udpAddr, out string) {
	bin := rsyslogBinary(t)
	dir := t.TempDir()
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ul, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcpAddr, udpAddr = tl.Addr().String(), ul.LocalAddr().String()
	tl.Close()
	ul.Close()
	conf := fmt.Sprintf(rsyslogConf, dir, tl.Addr().(*net.TCPAddr).Port, ul.LocalAddr().(*net.UDPAddr).Port)
	cf := filepath.Join(dir, "rsyslog.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", cf, "-i", filepath.Join(dir, "rsyslogd.pid"), "-n")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(3 * time.Second)
	fail := func(what string) {
		t.Helper()
		_ = cmd.Process.Kill()
		<-exited
		t.Fatalf("rsyslogd: %s\n%s", what, stderr.String())
	}
	// TCP: listening once a connection is accepted.
	for {
		c, err := net.DialTimeout("tcp", tcpAddr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			fail("exited before listening")
		default:
		}
		if time.Now().After(deadline) {
			fail("not listening on " + tcpAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// UDP: bound once an empty datagram (which imudp ignores) draws no
	// ICMP port-unreachable.
	for {
		c, err := net.Dial("udp", udpAddr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write(nil)
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if !errors.Is(err, syscall.ECONNREFUSED) {
			break
		}
		if time.Now().After(deadline) {
			fail("not bound to " + udpAddr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return tcpAddr, udpAddr, filepath.Join(dir, "out.log")
}

// alertDoc renders a document the way internal/alertfmt does (encoding/json
// without HTML escaping), with the title as rule.name.
func alertDoc(t *testing.T, id, title string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(map[string]any{"event": map[string]any{"kind": "alert", "id": id}, "rule": map[string]any{"name": title}}); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// TestRsyslog sends alerts through the real sink, over TCP (octet
// counting) and UDP, to Debian's rsyslogd and checks that rsyslog parsed
// exactly the messages sent, field by field: a title with a newline, a NUL
// and a fake "<13>1 ..." header stays inside its own message's MSG, in the
// JSON documents alertfmt renders and as raw bytes alike.
func TestRsyslog(t *testing.T) {
	tcpAddr, udpAddr, out := startRsyslog(t)
	const fake = "<13>1 2025-06-24T00:00:00Z forged haechi - - - injected"
	hostile := "Bulk export\n" + fake + "\x00 by m:42"
	tcpItems := []Item{
		{ID: "a1", Time: t0, Severity: 4, Doc: alertDoc(t, "al-1", hostile)},
		{ID: "a2", Time: t0.Add(time.Second), Severity: 3, Doc: alertDoc(t, "al-2", "Forged token für Kunde 42")},
		{ID: "a3", Time: t0.Add(2 * time.Second), Severity: 2, Doc: []byte("raw " + hostile + "\n17 " + fake + "\ttab")},
		{ID: "a4", Time: t0.Add(3 * time.Second), Severity: 1, Doc: []byte("99999 " + fake)},
	}
	udpItems := []Item{
		{ID: "u1", Time: t0.Add(4 * time.Second), Severity: 4, Doc: alertDoc(t, "al-3", hostile)},
		{ID: "u2", Time: t0.Add(5 * time.Second), Severity: 1, Doc: []byte("raw " + hostile)},
	}
	tcp := &Syslog{Network: "tcp", Address: tcpAddr, Facility: 4, Hostname: "siem host", MsgID: "haechi-alert-ecs", Timeout: 2 * time.Second}
	if errs := tcp.Send(context.Background(), tcpItems); states(errs) != "ok,ok,ok,ok" {
		t.Fatalf("tcp send: %v", errs)
	}
	udp := &Syslog{Network: "udp", Address: udpAddr, Facility: 13, Timeout: 2 * time.Second}
	if errs := udp.Send(context.Background(), udpItems); states(errs) != "ok,ok" {
		t.Fatalf("udp send: %v", errs)
	}

	// rsyslog writes MSG with control characters as #ooo, JSON-escaped;
	// the rest is the header the sink wrote, parsed back.
	line := func(input string, pri int, host, msgid string, it Item) string {
		var esc strings.Builder
		for _, c := range it.Doc {
			if c < ' ' {
				fmt.Fprintf(&esc, "#%03o", c)
			} else {
				esc.WriteByte(c)
			}
		}
		msg, _ := json.Marshal(esc.String())
		return fmt.Sprintf("%s|%d|%s|%s|haechi|-|%s|-|%s", input, pri, it.Time.UTC().Format("2006-01-02T15:04:05.000000Z07:00"), host, msgid, msg)
	}
	var want []string
	for i, it := range tcpItems {
		// facility 4 (auth); severity critical, high, medium, low → 2, 3, 4, 5
		want = append(want, line("imtcp", 4*8+[]int{2, 3, 4, 5}[i], "siemhost", "haechi-alert-ecs", it))
	}
	for i, it := range udpItems {
		want = append(want, line("imudp", 13*8+[]int{2, 5}[i], "-", "-", it))
	}
	slices.Sort(want)

	// Poll until every expected message is in, then a moment longer so a
	// message split in two, or an extra one, would show too.
	var got []string
	read := func() {
		b, _ := os.ReadFile(out)
		got = nil
		for _, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			if l == "" {
				continue
			}
			// Decode and re-encode MSG so rsyslog's JSON escaping
			// (\/, \uXXXX) compares with encoding/json's.
			if i := strings.LastIndexByte(l, '|'); i >= 0 {
				var m string
				if err := json.Unmarshal([]byte(`"`+l[i+1:]+`"`), &m); err == nil {
					enc, _ := json.Marshal(m)
					l = l[:i+1] + string(enc)
				}
			}
			got = append(got, l)
		}
		slices.Sort(got)
	}
	deadline := time.Now().Add(3 * time.Second)
	for read(); !containsAll(got, want) && time.Now().Before(deadline); read() {
		time.Sleep(25 * time.Millisecond)
	}
	time.Sleep(150 * time.Millisecond)
	read()
	if !slices.Equal(got, want) {
		t.Errorf("rsyslog parsed %d messages, want %d\n--- got\n%s\n--- want\n%s", len(got), len(want), strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
