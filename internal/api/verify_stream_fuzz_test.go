package api

import (
	"bufio"
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/gateway"
	"github.com/haechi-sec/haechi/internal/mint"
)

// pipeConn is a net.Conn reading a fixed input and recording what is
// written.
type pipeConn struct {
	net.Conn
	in  *bytes.Reader
	out bytes.Buffer
}

func (c *pipeConn) Read(b []byte) (int, error)       { return c.in.Read(b) }
func (c *pipeConn) Write(b []byte) (int, error)      { return c.out.Write(b) }
func (c *pipeConn) SetWriteDeadline(time.Time) error { return nil }
func (c *pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (c *pipeConn) SetDeadline(time.Time) error      { return nil }
func (c *pipeConn) Close() error                     { return nil }

// Whatever a client writes, the stream answers each complete line with
// exactly one line a client can read (an answer or "!"), in order, and
// never panics; a line too long ends it after one "!".
func FuzzVerifyStream(f *testing.F) {
	for _, s := range []string{"tok-a\tk1\n", "tok-a\tk1\t1780315200\t203.0.113.7\tcurl/8\nx\n", "\n\n", "a\tb\tc\td\te\tf\n", "tok\x00\n", "partial"} {
		f.Add([]byte(s))
	}
	reg := mint.New(mint.Options{MaxLifetime: 12 * time.Hour})
	reg.Add(mint.Mint{TokenID: "tok-a", KeyID: "k1", At: time.Now().Add(-time.Hour)})
	s := New(Options{Verify: VerifyOptions{Registry: reg, Rate: 1e9, Burst: 1 << 30}})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &pipeConn{in: bytes.NewReader(in)}
		s.serveStream(c, bufio.NewReaderSize(c, streamReadBuf), "")
		lines := bytes.Count(in, []byte{'\n'})
		long := false
		for l := range bytes.SplitSeq(in, []byte{'\n'}) {
			if len(l) >= streamReadBuf {
				long = true
			}
		}
		out := c.out.Bytes()
		if !long && bytes.Count(out, []byte{'\n'}) != lines {
			t.Fatalf("%d lines in, %d answers: %q", lines, bytes.Count(out, []byte{'\n'}), out)
		}
		for l := range bytes.SplitSeq(bytes.TrimSuffix(out, []byte{'\n'}), []byte{'\n'}) {
			if len(out) == 0 {
				break
			}
			if _, err := gateway.ParseStreamAnswer(l); err != nil && l[0] != '!' {
				t.Fatalf("unreadable answer %q: %v", l, err)
			}
		}
	})
}
