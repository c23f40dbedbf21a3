package cli_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/store"
)

// After a replay, `incidents list` lists the incidents of the replayed
// alerts (every alert in exactly one), `incidents show` shows one with its
// timeline, entities and scope, and `report --incident` reports on it.
func TestIncidentsListShowReport(t *testing.T) {
	data := t.TempDir()
	code, stdout, stderr := run(t, "replay", "--data-dir", data, contractPath)
	if code != 0 {
		t.Fatalf("replay: exit %d\n%s", code, stderr)
	}
	raised := map[string]bool{}
	for _, a := range alerts(t, stdout) {
		if a.State != "withdrawn" {
			raised[a.ID] = true
		}
	}
	code, out, stderr := run(t, "incidents", "list", "--data-dir", data, "-o", "json")
	if code != 0 {
		t.Fatalf("incidents list: exit %d\n%s", code, stderr)
	}
	var list []store.Incident
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var in store.Incident
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		list = append(list, in)
	}
	if len(list) == 0 {
		t.Fatal("no incidents")
	}
	in := map[string]string{}
	for _, inc := range list {
		code, out, stderr := run(t, "incidents", "show", "--data-dir", data, "-o", "json", inc.ID)
		if code != 0 {
			t.Fatalf("incidents show %s: exit %d\n%s", inc.ID, code, stderr)
		}
		var d api.IncidentDetail
		if err := json.Unmarshal([]byte(out), &d); err != nil {
			t.Fatal(err)
		}
		var body incident.Incident
		if err := json.Unmarshal(d.Body, &body); err != nil {
			t.Fatal(err)
		}
		if body.ID != inc.ID || len(body.AlertIDs) != inc.AlertCount || body.ID != incident.IDFor(body.AlertIDs[0]) {
			t.Errorf("incident %s: body %s with %d alerts (row: %d)", inc.ID, body.ID, len(body.AlertIDs), inc.AlertCount)
		}
		for _, a := range body.AlertIDs {
			if prev, dup := in[a]; dup {
				t.Errorf("alert %s in %s and %s", a, prev, inc.ID)
			}
			in[a] = inc.ID
		}
	}
	for a := range raised {
		if in[a] == "" {
			t.Errorf("alert %s is in no incident", a)
		}
	}
	top := list[0].ID
	code, out, stderr = run(t, "incidents", "show", "--data-dir", data, top)
	if code != 0 || !strings.Contains(out, "Timeline (event time):") || !strings.Contains(out, "distinct records") {
		t.Errorf("incidents show (table): exit %d\n%s%s", code, out, stderr)
	}
	for _, f := range []string{"md", "html", "json"} {
		code, out, stderr := run(t, "report", "--data-dir", data, "--incident", top, "-o", f)
		if code != 0 || !strings.Contains(out, top) || !strings.Contains(out, list[0].Title[:10]) {
			t.Errorf("report --incident -o %s: exit %d\n%s%s", f, code, out, stderr)
		}
	}
	if code, out, stderr := run(t, "scope", "--data-dir", data, "--incident", top); code != 0 || !strings.Contains(out, "distinct records") {
		t.Errorf("scope --incident: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := run(t, "incidents", "--data-dir", data); code != 0 || !strings.Contains(out, top) {
		t.Errorf("incidents (table): exit %d\n%s", code, out)
	}
	if code, _, stderr := run(t, "incidents", "show", "--data-dir", data, "in-nope"); code == 0 || !strings.Contains(stderr, "not found") {
		t.Errorf("unknown incident: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := run(t, "incidents", "list", "--data-dir", data, "--state", "done"); code == 0 || !strings.Contains(stderr, "state") {
		t.Errorf("bad state: exit %d\n%s", code, stderr)
	}
}
