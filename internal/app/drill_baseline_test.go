package app_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/drill"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/sim"
)

// Drill traffic moves no baseline or peer group: a simulated company's two
// days run through every default detector with and without every default
// drill every hour (its events marked event.Event.Drill, as serve's ingest
// marks them), and the findings about the company's own entities are the
// same. The drills are judged all the same: each hour's fan-out and cloud
// credential drills are found.
func TestDrillTrafficMovesNoBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("two simulated days through every detector, twice")
	}
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	var real bytes.Buffer
	if _, err := sim.Generate(context.Background(), sim.Options{Seed: 3, Days: 2, Customers: 2000, Start: start}, &real, nil); err != nil {
		t.Fatal(err)
	}
	// Each hour's drills go in at the first real event of the hour.
	var mixed bytes.Buffer
	hour := start
	sc := bufio.NewScanner(bytes.NewReader(real.Bytes()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	runs := 0
	for sc.Scan() {
		line := sc.Bytes()
		if ts := timestampOf(line); !ts.IsZero() && !ts.Before(hour.Add(time.Hour)) && ts.Before(start.Add(48*time.Hour)) {
			hour = ts.Truncate(time.Hour)
			for _, d := range drill.Defaults() {
				p, err := drill.Build(d, drill.NewRunID(d.Name, hour), ts)
				if err != nil {
					t.Fatal(err)
				}
				mixed.Write(p.Body)
			}
			runs++
		}
		mixed.Write(line)
		mixed.WriteByte('\n')
	}
	if runs < 40 {
		t.Fatalf("only %d hourly drill rounds", runs)
	}
	cfg := config.Default()
	canaries := []string{drill.CanaryRecord}
	isDrill := func(ev *event.Event) bool { return strings.HasPrefix(ev.ID, drill.Prefix) }
	without := detecttest.DrillFindings(t, bytes.NewReader(real.Bytes()), isDrill, 2, app.Detectors(cfg, canaries)...)
	with := detecttest.DrillFindings(t, bytes.NewReader(mixed.Bytes()), isDrill, 2, app.Detectors(cfg, canaries)...)
	var kept []event.Finding
	found := map[string]int{}
	for _, f := range with {
		if isDrillEntity(f.Entity) {
			found[f.Kind]++
			continue
		}
		kept = append(kept, f)
	}
	if a, b := summary(without), summary(kept); a != b {
		t.Errorf("drill traffic changed the findings about the company's own entities:\n%s", lineDiff(a, b))
	}
	for _, k := range []string{"source_fanout", "cloud_credential_outside_provider", "canary_record_access", "token_never_minted"} {
		if found[k] < runs {
			t.Errorf("%d findings of kind %s about drill entities in %d rounds", found[k], k, runs)
		}
	}
	t.Logf("%d findings about real entities either way; %d drill rounds judged: %v", len(kept), runs, found)
}

func isDrillEntity(e event.EntityKey) bool {
	return strings.Contains(e.ID, drill.Prefix) || strings.HasPrefix(e.ID, "198.18.") || strings.HasPrefix(e.ID, "198.19.")
}

func summary(fs []event.Finding) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%s %s %s %s %.0f %s\n", f.Time.UTC().Format(time.RFC3339Nano), f.Detector, f.Kind, f.Entity, f.Score, f.Explanation)
	}
	return b.String()
}

// timestampOf reads an NDJSON line's @timestamp (zero when it has none).
func timestampOf(line []byte) time.Time {
	const key = `"@timestamp":"`
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return time.Time{}
	}
	rest := line[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return time.Time{}
	}
	t, _ := time.Parse(time.RFC3339Nano, string(rest[:j]))
	return t
}

// lineDiff lists the lines only in a (-) and only in b (+), at most 40.
func lineDiff(a, b string) string {
	in := func(s string) map[string]int {
		m := map[string]int{}
		for _, l := range strings.Split(s, "\n") {
			m[l]++
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if mb[l] < ma[l] && len(out) < 40 {
			out = append(out, "- "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if ma[l] < mb[l] && len(out) < 40 {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
