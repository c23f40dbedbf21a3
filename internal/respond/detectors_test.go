package respond_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/respond"
)

// TestDefaultPlaybookDetectors: every detector a default playbook names
// (rule patterns aside) is one the pipeline runs, so a renamed detector
// cannot leave a playbook matching nothing.
func TestDefaultPlaybookDetectors(t *testing.T) {
	var names []string
	for _, d := range app.Detectors(config.Default(), []string{"canary-1"}) {
		names = append(names, d.Name())
	}
	seen := 0
	for _, pb := range respond.DefaultConfig().Playbooks {
		for _, d := range pb.Match.Detectors {
			if strings.HasPrefix(d, "rule:") {
				continue
			}
			seen++
			if !slices.Contains(names, d) {
				t.Errorf("playbook %s matches detector %q, which is none of %v", pb.Name, d, names)
			}
		}
	}
	if seen == 0 {
		t.Fatal("no default playbook names a detector")
	}
}
