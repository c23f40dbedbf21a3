package binding_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func readCase(t *testing.T, name string) *bytes.Reader {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name, "events.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}
