package config

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The reference config users copy is haechi.example.yaml at the root;
// testdata/good/full.yml is the copy the config tests read (every key
// present, every value the default: TestFullExampleHasEveryKey,
// TestGoodFixtures). They must stay byte for byte equal.
func TestExampleEqualsReference(t *testing.T) {
	example, err := os.ReadFile(filepath.Join("..", "..", "haechi.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(filepath.Join("testdata", "good", "full.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(example, full) {
		el, fl := strings.Split(string(example), "\n"), strings.Split(string(full), "\n")
		for i := 0; i < len(el) || i < len(fl); i++ {
			var e, f string
			if i < len(el) {
				e = el[i]
			}
			if i < len(fl) {
				f = fl[i]
			}
			if e != f {
				t.Fatalf("haechi.example.yaml and internal/config/testdata/good/full.yml differ from line %d:\n  example: %q\n  full.yml: %q\n"+
					"edit haechi.example.yaml, then: cp haechi.example.yaml internal/config/testdata/good/full.yml", i+1, e, f)
			}
		}
	}
	// The example loads as a user's haechi.yaml would, to the defaults.
	c, err := Load(filepath.Join("..", "..", "haechi.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// The example documents risk_threshold as "above 0 and at most 1000" (an
// earlier comment said "0: all alert", which validation refuses): keep the
// bounds what Validate enforces.
func TestRiskThresholdBounds(t *testing.T) {
	for _, tc := range []struct {
		v  float64
		ok bool
	}{{0, false}, {-1, false}, {0.5, true}, {90, true}, {1000, true}, {1000.5, false}} {
		c := Default()
		c.Alerts.RiskThreshold = tc.v
		err := c.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("risk_threshold %v: Validate() = %v, want ok=%v", tc.v, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "alerts.risk_threshold: must be above 0 and at most 1000") {
			t.Errorf("risk_threshold %v: %v", tc.v, err)
		}
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "haechi.example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(example, []byte("Above\n  # 0 and at most 1000.\n  risk_threshold:")) {
		t.Error("haechi.example.yaml: the comment on risk_threshold no longer states Validate's bounds (above 0, at most 1000)")
	}
}
