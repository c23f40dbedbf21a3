package cli

import (
	"context"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/ledger"
)

// formValuer holds its values in a shortened form, as PostgreSQL holds a
// long ledger value.
type formValuer struct{ values []string }

func (f formValuer) LedgerValues(context.Context, string, int64, int64) ([]string, error) {
	return f.values, nil
}

func (formValuer) LedgerValueForm() func(string) string {
	return func(s string) string {
		if len(s) > 8 {
			return s[:4] + "…" + s[len(s)-2:]
		}
		return s
	}
}

// A value the store holds in another form (a long principal on
// PostgreSQL) is seen when its stored form is, and is not named "never
// seen" for lack of a byte-for-byte match.
func TestNeverSeenComparesStoredForm(t *testing.T) {
	long := "principal-" + strings.Repeat("x", 40) + "-z"
	r := formValuer{values: []string{"prin…-z", "short"}}
	res := &ledger.Result{Terms: []ledger.Term{{Dim: ledger.Principal, Values: []string{long, "short", "other-long-value"}}}}
	got, err := neverSeen(context.Background(), r, res)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.HasPrefix(got[0], "principal other-long-value was never seen") {
		t.Fatalf("never seen %q, want only other-long-value", got)
	}
}
