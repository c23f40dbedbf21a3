package behaviour_test

import (
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/behaviour"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
)

// TestReplayFile runs the detector alone over $BEHAVIOUR_EVENTS (contract
// NDJSON) and prints its findings: a tool for studying the statistics on a
// simulated or real stream, skipped otherwise.
func TestReplayFile(t *testing.T) {
	path := os.Getenv("BEHAVIOUR_EVENTS")
	if path == "" {
		t.Skip("set BEHAVIOUR_EVENTS to an NDJSON file to replay")
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fs := detecttest.Findings(t, f, 2, behaviour.New(behaviour.Options{Model: os.Getenv("BEHAVIOUR_MODEL") != "0"}))
	kinds := map[string]int{}
	ents := map[string]int{}
	for _, x := range fs {
		kinds[x.Kind]++
		ents[x.Kind+" "+x.Entity.ID]++
		if os.Getenv("BEHAVIOUR_VERBOSE") != "" {
			fmt.Printf("%s %s %s %.0f %s\n", x.Time.Format("01-02T15:04"), x.Kind, x.Entity.ID, x.Score, x.Explanation)
		}
	}
	fmt.Println(kinds)
	var ks []string
	for k := range ents {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	for _, k := range ks {
		fmt.Println(k, ents[k])
	}
}
