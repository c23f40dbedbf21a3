package ingest_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/ingest"
)

// Each kind of writer is an origin of event time of its own; the inline
// check's refusals share one, "verify", as when they were submitted
// straight to the pipeline.
func TestOrigin(t *testing.T) {
	for _, c := range []struct{ scope, key, want string }{
		{"tok-3f9a", "", "token tok-3f9a"},
		{"tok-3f9a", "batch-1", "token tok-3f9a"},
		{"", "", "token "},
		{ingest.DrillScope, "run-7", "drill run-7"},
		{ingest.VerifyScope, "", "verify"},
	} {
		if got := ingest.Origin(c.scope, c.key); got != c.want {
			t.Errorf("Origin(%q, %q) = %q, want %q", c.scope, c.key, got, c.want)
		}
	}
}
