package decode

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	"github.com/haechi-sec/haechi/internal/event"
)

// benchLines is a realistic mix of contract-shaped lines: 80% gateway.access
// with varied users, tokens and record ids, 10% auth.token, 10% auth.login.
func benchLines(n int) [][]byte {
	rng := rand.New(rand.NewPCG(1, 2))
	uas := []string{
		"Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
		"python-requests/2.32.3",
		"okhttp/4.12.0",
	}
	ips := []string{"211.234.10.9", "45.77.201.13", "10.20.4.17", "185.220.101.4", "103.152.112.40"}
	kinds := []struct{ action, typ, fields, path string }{
		{"member.profile.read", "customer", `["name","email","phone"]`, "profile"},
		{"member.address.list", "address", `["name","phone","address","entrance_code"]`, "addresses"},
		{"member.orders.list", "order", `["name","order_history"]`, "orders"},
	}
	lines := make([][]byte, n)
	for i := range lines {
		user := 10_000_000 + rng.IntN(50_000)
		ts := fmt.Sprintf("2025-06-24T%02d:%02d:%02dZ", rng.IntN(24), rng.IntN(60), rng.IntN(60))
		ip := ips[rng.IntN(len(ips))]
		ua := uas[rng.IntN(len(uas))]
		tok := fmt.Sprintf("tk-%08x", rng.Uint32())
		var s string
		switch r := rng.IntN(10); {
		case r < 8:
			k := kinds[rng.IntN(len(kinds))]
			var ids bytes.Buffer
			for j := range 1 + rng.IntN(3) {
				if j > 0 {
					ids.WriteByte(',')
				}
				if k.typ == "customer" {
					fmt.Fprintf(&ids, `"%d"`, user)
				} else {
					fmt.Fprintf(&ids, `"a:%d:%d"`, user, j+1)
				}
			}
			s = fmt.Sprintf(`{"@timestamp":"%s","event":{"dataset":"gateway.access","action":"%s","outcome":"success"},"user":{"id":"m:%d"},"token":{"id":"%s","key_id":"auth-2025-03","issued_at":"2025-06-24T08:59:58Z"},"source":{"ip":"%s","geo":{"country_iso_code":"KR"},"as":{"number":4766}},"user_agent":{"original":"%s"},"http":{"request":{"method":"GET"},"response":{"status_code":200,"body":{"bytes":%d}}},"url":{"path":"/api/v2/members/%d/%s"},"records":{"type":"%s","ids":[%s],"fields":%s}}`,
				ts, k.action, user, tok, ip, ua, 500+rng.IntN(2000), user, k.path, k.typ, ids.String(), k.fields)
		case r < 9:
			s = fmt.Sprintf(`{"@timestamp":"%s","event":{"dataset":"auth.token","action":"token.issued","outcome":"success"},"user":{"id":"m:%d"},"token":{"id":"%s","key_id":"auth-2025-03","issued_at":"%s","expires_at":"2025-06-24T20:59:58Z","issuer":"https://auth.example-shop.kr"},"source":{"ip":"%s"}}`,
				ts, user, tok, ts, ip)
		default:
			outcome := "success"
			if rng.IntN(4) == 0 {
				outcome = "failure"
			}
			s = fmt.Sprintf(`{"@timestamp":"%s","event":{"dataset":"auth.login","action":"login","outcome":"%s"},"user":{"id":"m:%d"},"source":{"ip":"%s","geo":{"country_iso_code":"KR"},"as":{"number":4766,"organization":{"name":"Korea Telecom"}}},"user_agent":{"original":"%s"}}`,
				ts, outcome, user, ip, ua)
		}
		lines[i] = []byte(s)
	}
	return lines
}

func BenchmarkDecode(b *testing.B) {
	lines := benchLines(4096)
	total := 0
	for _, l := range lines {
		total += len(l)
	}
	d := NewDecoder()
	var ev event.Event
	for _, l := range lines { // every line must decode
		if err := d.Decode(l, &ev); err != nil {
			b.Fatalf("%v: %s", err, l)
		}
	}
	b.SetBytes(int64(total / len(lines)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := d.Decode(lines[i%len(lines)], &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// loopReader repeats data forever.
type loopReader struct {
	data []byte
	off  int
}

func (l *loopReader) Read(p []byte) (int, error) {
	n := copy(p, l.data[l.off:])
	l.off = (l.off + n) % len(l.data)
	return n, nil
}

func BenchmarkReader(b *testing.B) {
	lines := benchLines(4096)
	data := append(bytes.Join(lines, []byte("\n")), '\n')
	b.SetBytes(int64(len(data) / len(lines)))
	b.ReportAllocs()
	r := NewReader(&loopReader{data: data}, 0, 0)
	var ev event.Event
	b.ResetTimer()
	for b.Loop() {
		if err := r.Next(&ev); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkJSONTextValidate is the floor of Decode's design: jsontext
// validating the same lines without interpreting them.
func BenchmarkJSONTextValidate(b *testing.B) {
	lines := benchLines(4096)
	var dec jsontext.Decoder
	var bb bytes.Buffer
	for i := 0; b.Loop(); i++ {
		bb = *bytes.NewBuffer(lines[i%len(lines)])
		dec.Reset(&bb, allowDup)
		if _, err := dec.ReadValue(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
