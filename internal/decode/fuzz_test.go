package decode

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

var validCodes = map[string]bool{
	CodeInvalidJSON: true, CodeMissingField: true, CodeInvalidField: true, CodeLineTooLong: true,
}

func checkLineError(t *testing.T, err error) {
	t.Helper()
	var le *LineError
	if !errors.As(err, &le) {
		t.Fatalf("error %v (%T) is not a *LineError", err, err)
	}
	if !validCodes[le.Code] {
		t.Fatalf("unknown code %q", le.Code)
	}
	if le.Reason == "" || strings.ContainsAny(le.Reason, "\r\n") {
		t.Fatalf("bad reason %q", le.Reason)
	}
}

func checkEvent(t *testing.T, ev *event.Event) {
	t.Helper()
	if ev.Time.IsZero() || ev.Dataset == "" || ev.Action == "" {
		t.Fatalf("accepted event lacks a required field: %+v", ev)
	}
	if ev.Time.Location().String() != "UTC" {
		t.Fatalf("time not in UTC: %v", ev.Time)
	}
	// Every time of an accepted event survives Unix nanoseconds, the
	// form the store, ledger, engine and checkpoints keep it in.
	for _, tm := range []time.Time{ev.Time, ev.Token.IssuedAt, ev.Token.ExpiresAt, ev.Identity.TerminatedAt, ev.Identity.LastActive, ev.Key.RetiredAt} {
		if !tm.IsZero() && !time.Unix(0, tm.UnixNano()).Equal(tm) {
			t.Fatalf("time %s does not survive UnixNano", tm)
		}
	}
}

func FuzzDecode(f *testing.F) {
	if data, err := os.ReadFile(contractCopy); err == nil {
		for _, line := range bytes.Split(data, []byte("\n")) {
			f.Add(line)
		}
	}
	for _, s := range []string{
		`{"@timestamp":"2025-06-24T09:00:03.5+09:00","event.dataset":"d","event.action":"a","records.ids":[1,"2",3e2]}`,
		`{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"d","action":"a"},"user.roles":"r","source.ip":"::ffff:1.2.3.4%x"}`,
		`{"@timestamp":null,"http.response":{"status_code":"200"}}`,
		`{"@timestamp":"2262-04-11T23:47:16.854775807Z","event.dataset":"d","event.action":"a","token.expires_at":"9999-01-01T00:00:00Z"}`,
		`{"@timestamp":"1600-01-01T00:00:00Z","event.dataset":"d","event.action":"a"}`,
		`{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"hr.roster","action":"identity.upsert"},"identity":{"id":"e:7","roles":["admin"],"last_active":"2025-03-01T09:00:00+09:00"}}`,
		`{"@timestamp":"2025-06-24T09:00:03Z","event.dataset":"hr.roster","event.action":"a","identity.last_active":"not a time"}`,
		`{"@timestamp":"2025-06-24T09:00:03Z","event.dataset":"web.shop","event.action":"a","url":{"path":"/items","query":"id=1 UNION SELECT","domain":"shop.example"},"url.query":"x"}`,
		`[1,2]`, `{}`, ``, `{"a":1}{`, `{"user":{"id":"\u00e9"}}`,
	} {
		f.Add([]byte(s))
	}
	d := NewDecoder()
	f.Fuzz(func(t *testing.T, line []byte) {
		orig := bytes.Clone(line)
		var ev event.Event
		err := d.Decode(line, &ev)
		if !bytes.Equal(orig, line) {
			t.Fatal("Decode modified its input")
		}
		switch {
		case err == nil:
			checkEvent(t, &ev)
			// Decoding is deterministic, also with warm caches.
			var again event.Event
			if err := d.Decode(line, &again); err != nil {
				t.Fatalf("second Decode failed: %v", err)
			}
		case err == ErrEmpty:
		default:
			checkLineError(t, err)
		}

		// The same bytes as a stream, with a small line limit.
		r := NewReader(bytes.NewReader(line), 1, 64)
		prev := 0
		for i := 0; ; i++ {
			var ev event.Event
			err := r.Next(&ev)
			if err == io.EOF {
				break
			}
			if i > len(line)+1 {
				t.Fatal("Reader does not terminate")
			}
			if r.Line() <= prev {
				t.Fatalf("line numbers not increasing: %d after %d", r.Line(), prev)
			}
			prev = r.Line()
			if err == nil {
				checkEvent(t, &ev)
				if int(ev.Line) != r.Line() {
					t.Fatalf("ev.Line %d != %d", ev.Line, r.Line())
				}
				continue
			}
			checkLineError(t, err)
		}
	})
}
