package lines

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/haechi-sec/haechi/internal/decode"
)

func TestReader(t *testing.T) {
	long := strings.Repeat("x", 5000)
	in := "\xef\xbb\xbfa\r\n\n  \t\nb\n" + long + "\r\n" + strings.Repeat("y", 100) + "\nc"
	r := NewReader(iotest.OneByteReader(strings.NewReader(in)), 100)
	var got []string
	for {
		line, err := r.Next()
		if err == io.EOF {
			break
		}
		var le *decode.LineError
		switch {
		case errors.As(err, &le):
			got = append(got, le.Code+":"+le.Reason)
		case err != nil:
			t.Fatal(err)
		default:
			got = append(got, string(line))
		}
	}
	want := []string{"a", "b", "line_too_long:line of 5000 bytes exceeds the limit of 100 bytes", strings.Repeat("y", 100), "c"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q", got)
	}
	if r.Line() != 7 {
		t.Errorf("Line() = %d, want 7", r.Line())
	}
}

func TestLongLineWithinLimit(t *testing.T) {
	long := strings.Repeat("z", 200<<10)
	r := NewReader(strings.NewReader(long+"\n"+long), 0)
	for i := 0; i < 2; i++ {
		line, err := r.Next()
		if err != nil || string(line) != long {
			t.Fatalf("line %d: %d bytes, %v", i, len(line), err)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatal(err)
	}
}

func TestReadErrorSticky(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(io.MultiReader(strings.NewReader("a\n"), iotest.ErrReader(boom)), 0)
	if line, err := r.Next(); err != nil || string(line) != "a" {
		t.Fatal(line, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := r.Next(); err != boom {
			t.Fatalf("got %v", err)
		}
	}
}
