package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/api"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestEntityFindings: the entity page lists the entity's stored findings
// (alerting, below the threshold, suppressed), newest first, escaped, and
// no other entity's.
func TestEntityFindings(t *testing.T) {
	e := newEnv(t, true)
	sess, _ := e.login(t, e.analyst)
	ctx := context.Background()
	e7 := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:7"}
	f := func(ent event.EntityKey, at time.Duration, det, title string, score, added float64) event.Finding {
		return event.Finding{Detector: det, Kind: det, Title: title, Entity: ent, Time: now.Add(-at), Score: score,
			Severity: event.SeverityMedium, Evidence: []string{"req-1:" + det}, Contribution: added}
	}
	if err := e.st.SaveFindings(ctx, []store.ScoredFinding{
		{Finding: f(e7, 3*time.Hour, "off_hours", "Off-hours lookup", 45, 45), Risk: 45, Threshold: 90},
		{Finding: f(e7, 2*time.Hour, "peer_route", `Route <script>alert(1)</script> no peer uses`, 50, 50), Risk: 95.25, Threshold: 90, Alert: "al-low"},
		{Finding: f(e7, time.Hour, "scripted_client", "Scripted client", 40, 0), Risk: 95, Threshold: 90, Suppressed: true},
		{Finding: f(event.EntityKey{Kind: event.EntityPrincipal, ID: "e:8"}, time.Hour, "off_hours", "Someone else's lookup", 45, 45), Risk: 45, Threshold: 90},
	}); err != nil {
		t.Fatal(err)
	}
	w := e.do(t, "GET", "/entities/principal/e:7", "", nil, sess)
	if w.Code != 200 {
		t.Fatalf("GET entity: %d\n%s", w.Code, w.Body)
	}
	body := w.Body.String()
	_, sec, ok := strings.Cut(body, `<section id="findings">`)
	if !ok {
		t.Fatalf("no findings section:\n%s", body)
	}
	sec, _, _ = strings.Cut(sec, "</section>")
	rows := regexp.MustCompile(`(?s)<tr><td><time.*?</tr>`).FindAllString(sec, -1)
	// html/template writes + as &#43;.
	want := [][]string{ // newest first: time, detector, kind, score, added, risk, alert, title
		{"2026-11-23 11:00:00", "<td>scripted_client</td><td>scripted_client</td>", `<td class="num">40</td><td class="num">&#43;0.0</td><td class="num">95.0</td>`,
			"<td>suppressed</td>", "<td>Scripted client</td>"},
		{"2026-11-23 10:00:00", "<td>peer_route</td>", `<td class="num">50</td><td class="num">&#43;50.0</td><td class="num">95.2</td>`,
			`<a href="/alerts/al-low">al-low</a>`, "Route &lt;script&gt;alert(1)&lt;/script&gt; no peer uses"},
		{"2026-11-23 09:00:00", "<td>off_hours</td>", `<td class="num">45</td><td class="num">&#43;45.0</td><td class="num">45.0</td>`,
			`below 90</span>`, "<td>Off-hours lookup</td>"},
	}
	if len(rows) != len(want) {
		t.Fatalf("%d finding rows, want %d:\n%s", len(rows), len(want), sec)
	}
	for i, r := range rows {
		for _, s := range want[i] {
			if !strings.Contains(r, s) {
				t.Errorf("row %d lacks %q:\n%s", i, s, r)
			}
		}
	}
	for _, s := range []string{"<script>", "Someone else", "next ones"} {
		if strings.Contains(sec, s) {
			t.Errorf("findings section holds %q:\n%s", s, sec)
		}
	}

	// Another entity without findings says so.
	w = e.do(t, "GET", "/entities/token/t-9", "", nil, sess)
	if !strings.Contains(w.Body.String(), "No stored finding about this entity.") {
		t.Errorf("token page lacks the empty row:\n%s", w.Body)
	}
}

// TestEntityFindingsCapped: an entity with more findings than the page
// lists shows the newest 100 and links to the rest, which the link (the
// API, with the page's session) then lists.
func TestEntityFindingsCapped(t *testing.T) {
	e := newEnv(t, true)
	sess, _ := e.login(t, e.analyst)
	src := event.EntityKey{Kind: event.EntitySource, ID: "203.0.113.9"}
	var fs []store.ScoredFinding
	for i := range 103 {
		fs = append(fs, store.ScoredFinding{Finding: event.Finding{Detector: "scripted_client", Kind: "scripted_client",
			Title: fmt.Sprintf("finding %03d", i), Entity: src, Time: now.Add(-time.Duration(i) * time.Minute), Score: 45, Severity: event.SeverityLow,
			Evidence: []string{fmt.Sprintf("req-1:%d", i)}, Contribution: 45}, Risk: 45, Threshold: 90})
	}
	if err := e.st.SaveFindings(context.Background(), fs); err != nil {
		t.Fatal(err)
	}
	body := e.do(t, "GET", "/entities/source/203.0.113.9", "", nil, sess).Body.String()
	if n := strings.Count(body, "<td>scripted_client</td><td>scripted_client</td>"); n != 100 {
		t.Errorf("%d finding rows, want 100", n)
	}
	if !strings.Contains(body, "finding 000") || !strings.Contains(body, "finding 099") || strings.Contains(body, "finding 100") {
		t.Error("the page does not list exactly the newest 100")
	}
	m := regexp.MustCompile(`<a href="(/v1/findings\?[^"]+)">The next ones`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no link to the rest:\n%s", body)
	}
	more, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	if got := more.Query().Get("entity"); got != "source:203.0.113.9" {
		t.Errorf("link's entity = %q", got)
	}
	w := e.do(t, "GET", more.String(), "", nil, sess)
	var page api.FindingList
	if err := json.Unmarshal(w.Body.Bytes(), &page); w.Code != 200 || err != nil {
		t.Fatalf("GET %s: %d %v %v\n%s", more, w.Code, err, w.Header(), w.Body)
	}
	var titles []string
	for _, f := range page.Findings {
		titles = append(titles, f.Title)
	}
	if strings.Join(titles, ",") != "finding 100,finding 101,finding 102" || page.Next != "" {
		t.Errorf("the rest = %v (next %q), want findings 100–102", titles, page.Next)
	}
}
