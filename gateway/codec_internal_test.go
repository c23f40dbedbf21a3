package gateway

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// splitAnswer is the plain reading of an answer line parseAnswer must
// agree with: the fields between tabs, the first the verdict.
func splitAnswer(line []byte) (Answer, bool) {
	if len(line) < 2 || (line[0] != '+' && line[0] != '-') {
		return Answer{}, false
	}
	fields := bytes.Split(line[1:], []byte{'\t'})
	if len(fields[0]) == 0 {
		return Answer{}, false
	}
	a := Answer{Allow: line[0] == '+', Verdict: string(fields[0])}
	for _, r := range fields[1:] {
		a.Reasons = append(a.Reasons, string(r))
	}
	return a, true
}

// The stream's reader (interned strings) and ParseAnswer read every line
// as splitting it on tabs does, whatever the interner already holds.
func FuzzParseAnswerInterned(f *testing.F) {
	for _, s := range []string{"+known", "-hijacked\ta\tb", "-x\t", "-x\t\t", "+\tr", "-never_minted\tno mint of this token", "+"} {
		f.Add(s)
	}
	in := interner{}
	f.Fuzz(func(t *testing.T, s string) {
		want, wok := splitAnswer([]byte(s))
		for _, got := range []func() (Answer, bool){
			func() (Answer, bool) { return parseAnswer([]byte(s), nil) },
			func() (Answer, bool) { return parseAnswer([]byte(s), in) },
			func() (Answer, bool) { return parseAnswer([]byte(s), in) }, // now interned
		} {
			a, ok := got()
			if ok != wok || !reflect.DeepEqual(a, want) {
				t.Fatalf("%q: got %+v %v, want %+v %v", s, a, ok, want, wok)
			}
		}
		if len(in) > maxInterned {
			t.Fatalf("interner holds %d strings, more than %d", len(in), maxInterned)
		}
	})
}

// hasControl agrees with testing the runes, on any bytes (invalid UTF-8
// included).
func FuzzHasControl(f *testing.F) {
	for _, s := range []string{"", "abc", "a\tb", "\x7f", "é\x01", "\xff\xfe", "\u2028", "\xc2\x85"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := bytes.ContainsFunc([]byte(s), func(r rune) bool { return r < 0x20 || r == 0x7f })
		if got := hasControl([]byte(s)); got != want {
			t.Fatalf("%q: hasControl %v, runes say %v", s, got, want)
		}
	})
}

// A deadline fires after its timeout, within two ticks, and channels
// that are due are dropped.
func TestDeadlines(t *testing.T) {
	const tick = 2 * time.Millisecond
	d := newDeadlines(tick)
	defer d.close()
	for _, timeout := range []time.Duration{0, 5 * time.Millisecond, 30 * time.Millisecond} {
		start := time.Now()
		<-d.after(timeout)
		if el := time.Since(start); el < timeout {
			t.Errorf("timeout %v fired after %v", timeout, el)
		}
	}
	// Many checks in one tick share a channel.
	a, b := d.after(time.Hour), d.after(time.Hour)
	if a != b {
		t.Error("two deadlines in the same tick have different channels")
	}
	d.mu.Lock()
	n := len(d.at)
	d.mu.Unlock()
	if n != 1 {
		t.Errorf("%d channels kept, want 1 (the hour's)", n)
	}
	if tk := deadlineTick(50 * time.Millisecond); tk != 2500*time.Microsecond {
		t.Errorf("tick of 50ms = %v", tk)
	}
	if tk := deadlineTick(5 * time.Millisecond); tk != time.Millisecond {
		t.Errorf("tick of 5ms = %v", tk)
	}
}

// awaitUntil gives up when its deadline passes, as a timeout, whether
// the check was queued (room in the queue) or not (no room).
func TestAwaitUntilExpires(t *testing.T) {
	expired := make(chan struct{})
	close(expired)
	for _, q := range []chan *pendingCheck{make(chan *pendingCheck, 1), make(chan *pendingCheck)} {
		_, err := awaitUntil(context.Background(), q, Check{}, expired)
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), context.DeadlineExceeded.Error()) {
			t.Fatalf("err = %v, want unavailable: deadline exceeded", err)
		}
	}
}
