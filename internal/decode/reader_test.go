package decode

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/haechi-sec/haechi/internal/event"
)

// result is one outcome of Reader.Next, flattened for comparison.
type result struct {
	line   int    // ev.Line or LineError.Line
	code   string // "" for an event
	action string
}

func readAll(t *testing.T, r *Reader) []result {
	t.Helper()
	var out []result
	for i := 0; ; i++ {
		if i > 1000 {
			t.Fatal("Reader does not terminate")
		}
		var ev event.Event
		err := r.Next(&ev)
		if err == io.EOF {
			// EOF is sticky.
			if err := r.Next(&ev); err != io.EOF {
				t.Fatalf("Next after EOF = %v", err)
			}
			return out
		}
		var le *LineError
		switch {
		case err == nil:
			if ev.Input != 3 {
				t.Errorf("Input = %d, want 3", ev.Input)
			}
			if int(ev.Line) != r.Line() {
				t.Errorf("ev.Line = %d, Reader.Line = %d", ev.Line, r.Line())
			}
			out = append(out, result{line: int(ev.Line), action: ev.Action})
		case errors.As(err, &le):
			if le.Line != r.Line() {
				t.Errorf("LineError.Line = %d, Reader.Line = %d", le.Line, r.Line())
			}
			if !strings.HasPrefix(le.Error(), "line ") {
				t.Errorf("Error() = %q", le.Error())
			}
			out = append(out, result{line: le.Line, code: le.Code})
		default:
			t.Fatalf("Next: unexpected error %v", err)
		}
	}
}

func ln(action string) string {
	return `{"@timestamp":"2025-06-24T09:00:03Z","event":{"dataset":"gateway.access","action":"` + action + `"}}`
}

func TestReader(t *testing.T) {
	long := ln(strings.Repeat("x", 300))
	huge := ln(strings.Repeat("y", 200_000)) // spans several bufio buffers
	tests := []struct {
		name    string
		input   string
		maxLine int
		want    []result
		lines   int
	}{
		{"empty input", "", 0, nil, 0},
		{"one line", ln("a") + "\n", 0, []result{{1, "", "a"}}, 1},
		{"no final newline", ln("a") + "\n" + ln("b"), 0, []result{{1, "", "a"}, {2, "", "b"}}, 2},
		{"crlf", ln("a") + "\r\n" + ln("b") + "\r\n", 0, []result{{1, "", "a"}, {2, "", "b"}}, 2},
		{"crlf no final newline", ln("a") + "\r\n" + ln("b") + "\r", 0, []result{{1, "", "a"}, {2, "", "b"}}, 2},
		{"broken line in the middle",
			ln("a") + "\n" + `{"@timestamp":` + "\n" + ln("c") + "\n" + `{"event":{}}` + "\n" + ln("e") + "\n", 0,
			[]result{{1, "", "a"}, {2, CodeInvalidJSON, ""}, {3, "", "c"}, {4, CodeMissingField, ""}, {5, "", "e"}}, 5},
		{"empty lines skipped but counted",
			"\n\n" + ln("a") + "\n  \n\r\n" + ln("b") + "\n\n", 0,
			[]result{{3, "", "a"}, {6, "", "b"}}, 7},
		{"long line", ln("a") + "\n" + long + "\n" + ln("c") + "\n", 200,
			[]result{{1, "", "a"}, {2, CodeLineTooLong, ""}, {3, "", "c"}}, 3},
		{"long line crlf at end", ln("a") + "\n" + long + "\r\n", 200,
			[]result{{1, "", "a"}, {2, CodeLineTooLong, ""}}, 2},
		{"long line without newline", ln("a") + "\n" + long, 200,
			[]result{{1, "", "a"}, {2, CodeLineTooLong, ""}}, 2},
		{"exactly max", ln("a") + "\r\n" + ln("b") + "\n", len(ln("a")),
			[]result{{1, "", "a"}, {2, "", "b"}}, 2},
		{"one over max", ln("ab") + "\n" + ln("b") + "\n", len(ln("b")),
			[]result{{1, CodeLineTooLong, ""}, {2, "", "b"}}, 2},
		{"huge line default limit", huge + "\n" + ln("b") + "\n", 0,
			[]result{{1, "", strings.Repeat("y", 200_000)}, {2, "", "b"}}, 2},
		{"huge line over limit", ln("a") + "\n" + huge + "\n" + ln("b"), 100_000,
			[]result{{1, "", "a"}, {2, CodeLineTooLong, ""}, {3, "", "b"}}, 3},
		{"bom", "\xef\xbb\xbf" + ln("a") + "\n", 0, []result{{1, "", "a"}}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, wrap := range []struct {
				name string
				f    func(io.Reader) io.Reader
			}{
				{"plain", func(r io.Reader) io.Reader { return r }},
				{"onebyte", iotest.OneByteReader},
				{"dataerr", iotest.DataErrReader},
			} {
				r := NewReader(wrap.f(strings.NewReader(tt.input)), 3, tt.maxLine)
				got := readAll(t, r)
				if !equalResults(got, tt.want) {
					t.Errorf("%s: got %v, want %v", wrap.name, got, tt.want)
				}
				if r.Line() != tt.lines {
					t.Errorf("%s: Line() = %d, want %d", wrap.name, r.Line(), tt.lines)
				}
			}
		})
	}
}

func equalResults(a, b []result) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReaderTooLongReason(t *testing.T) {
	r := NewReader(strings.NewReader(strings.Repeat("x", 5000)+"\r\n"), 0, 1000)
	var ev event.Event
	err := r.Next(&ev)
	var le *LineError
	if !errors.As(err, &le) || le.Code != CodeLineTooLong {
		t.Fatalf("Next = %v, want line_too_long", err)
	}
	if want := "line 1: line of 5000 bytes exceeds the limit of 1000 bytes"; le.Error() != want {
		t.Errorf("Error() = %q, want %q", le.Error(), want)
	}
}

func TestReaderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader(ln("a")+"\n"+`{"@tim`), iotest.ErrReader(boom)), 0, 0)
	var ev event.Event
	if err := r.Next(&ev); err != nil || ev.Action != "a" {
		t.Fatalf("Next = %v, %q", err, ev.Action)
	}
	for range 2 {
		if err := r.Next(&ev); err != boom {
			t.Fatalf("Next = %v, want boom (sticky)", err)
		}
	}
}

// TestLines: Lines returns every line, empty ones included, and counts
// them; a line over the limit is a *LineError and reading continues.
func TestLines(t *testing.T) {
	l := NewLines(strings.NewReader("\xef\xbb\xbfa\r\n\n"+strings.Repeat("x", 70)+"\n  \nb"), 64)
	var got []string
	for {
		line, err := l.Next()
		if err == io.EOF {
			break
		}
		var le *LineError
		switch {
		case errors.As(err, &le):
			got = append(got, le.Code)
			if le.Line != l.Line() {
				t.Errorf("LineError.Line = %d, Line() = %d", le.Line, l.Line())
			}
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, string(line))
		}
	}
	want := []string{"a", "", CodeLineTooLong, "  ", "b"}
	if strings.Join(got, "|") != strings.Join(want, "|") || l.Line() != 5 {
		t.Errorf("got %q, Line() %d; want %q, 5", got, l.Line(), want)
	}
}
