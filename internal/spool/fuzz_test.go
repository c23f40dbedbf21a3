package spool

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRecover writes arbitrary bytes as the only segment: Open never panics
// and recovers exactly the longest prefix of valid frames, then appends.
func FuzzRecover(f *testing.F) {
	var good []byte
	for _, r := range []string{"", "a", `{"event":"x"}`, "hello world"} {
		good = appendFrame(good, []byte(r))
	}
	f.Add(good)
	f.Add(good[:len(good)-3])
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(append(bytes.Clone(good), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0))
	bad := bytes.Clone(good)
	bad[10] ^= 1
	f.Add(bad)
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, segName(1)), data, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(Options{Dir: dir, SegmentBytes: 1 << 20, NoSync: true})
		if err != nil {
			if s != nil || err.Error() == "" {
				t.Fatalf("Open = %v, %v", s, err)
			}
			return
		}
		defer s.Close()
		got, err := readAll(t, s, 1)
		if err != nil {
			t.Fatalf("read after recovery: %v", err)
		}
		var enc []byte
		for _, r := range got {
			enc = appendFrame(enc, r.data)
		}
		if !bytes.HasPrefix(data, enc) {
			t.Fatal("recovered records are not a prefix of the file")
		}
		// The prefix is the longest: the rest does not start with a valid frame.
		if rest := data[len(enc):]; len(rest) >= frameHeader {
			if l := frameLen(rest); l <= int64(len(rest)-frameHeader) && frameOK(rest[:frameHeader], rest[frameHeader:frameHeader+l]) {
				t.Fatal("a valid frame was dropped")
			}
		}
		first, _, err := s.Append(context.Background(), []byte("next"))
		if err != nil && !errors.Is(err, ErrFull) {
			t.Fatal(err)
		}
		if err == nil && first != uint64(len(got))+1 {
			t.Fatalf("Append = %d after %d records", first, len(got))
		}
	})
}
