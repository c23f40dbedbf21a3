package longtext

import (
	"bytes"
	"compress/flate"
	"strings"
	"testing"
)

func TestIncompressible(t *testing.T) {
	for _, n := range []int{1, 100, 2700, 64 << 10} {
		s := Incompressible("P", n)
		if !strings.HasPrefix(s, "P") || len(s) < n || len(s) > n+12 {
			t.Fatalf("n=%d: %d bytes, prefix %q", n, len(s), s[:1])
		}
		if s != Incompressible("P", n) {
			t.Fatalf("n=%d: not the same twice", n)
		}
		if n < 2700 {
			continue
		}
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, flate.BestCompression)
		_, _ = w.Write([]byte(s))
		_ = w.Close()
		// Hex digits carry 4 bits a byte: half is the least flate can
		// reach; a repetitive text of this length compresses below 1 %.
		if buf.Len() < len(s)/3 {
			t.Fatalf("n=%d: compresses to %d bytes of %d", n, buf.Len(), len(s))
		}
	}
}
