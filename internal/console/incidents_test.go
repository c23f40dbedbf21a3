package console_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/store"
)

var incRowRe = regexp.MustCompile(`<tr data-incident="([^"]+)"`)

// incidentsOn fetches an incidents page and returns its incident ids and
// its older link.
func (e *env) incidentsOn(t *testing.T, p string) (ids []string, older string) {
	t.Helper()
	w := e.do(t, "GET", p, e.analyst, nil)
	if w.Code != 200 {
		t.Fatalf("GET %s: %d\n%s", p, w.Code, w.Body)
	}
	for _, m := range incRowRe.FindAllStringSubmatch(w.Body.String(), -1) {
		ids = append(ids, m[1])
	}
	if m := linkRe("page-older").FindStringSubmatch(w.Body.String()); m != nil {
		older = html.UnescapeString(m[1])
	}
	return ids, older
}

// TestIncidentsFirst: the navigation leads with Incidents, and the
// overview with the open incidents (title, severity, state, time range,
// alert count, combined scope), before the alerts.
func TestIncidentsFirst(t *testing.T) {
	e := newEnv(t, true)
	body := e.do(t, "GET", "/", e.analyst, nil).Body.String()
	nav := regexp.MustCompile(`(?s)<nav>.*?</nav>`).FindString(body)
	if i, j := strings.Index(nav, `href="/incidents"`), strings.Index(nav, `href="/"`); i < 0 || i > j {
		t.Errorf("the navigation does not lead with Incidents:\n%s", nav)
	}
	key := incident.IDFor("al-crit")
	row := regexp.MustCompile(`(?s)<tr data-incident="` + key + `".*?</tr>`).FindString(body)
	for _, want := range []string{"Forged tokens: key k-1 (1 alert)", `badge critical`, `state open`, "2026-11-23 10:00:00", `<td class="num">1</td>`, `<td class="num">5</td>`} {
		if !strings.Contains(row, want) {
			t.Errorf("the overview's row of incident %s lacks %q:\n%s", key, want, row)
		}
	}
	if i, j := strings.Index(body, `id="open-incidents"`), strings.Index(body, `id="live-alerts"`); i < 0 || i > j {
		t.Error("the overview does not lead with the open incidents")
	}
	if !auditKind(t, e, "console_incident_scope_read") {
		t.Error("the overview's incident scopes are not audited")
	}
	// A closed incident leaves the overview.
	if _, err := e.st.SetIncidentVerdict(context.Background(), store.IncidentVerdict{IncidentID: key, Verdict: store.VerdictTruePositive, By: "t", At: now}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(e.do(t, "GET", "/", e.analyst, nil).Body.String(), `data-incident="`+key+`"`) {
		t.Error("the overview still lists a closed incident among the open ones")
	}
}

func auditKind(t *testing.T, e *env, kind string) bool {
	t.Helper()
	recs, err := e.st.AuditLog(context.Background(), 0, 10000)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(recs, func(r store.AuditRecord) bool { return r.Kind == kind })
}

// TestIncidentsListPagesAndFilters walks the incidents list by its older
// links, 50 a page, newest start first, each incident once; the state and
// severity filters are applied by the store; a mangled cursor is refused.
func TestIncidentsListPagesAndFilters(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	var alerts []event.Alert
	for i := range 110 { // each about its own principal: 110 incidents
		alerts = append(alerts, event.Alert{ID: fmt.Sprintf("ip-%03d", i), Time: now.Add(-72*time.Hour + time.Duration(i)*time.Minute),
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: fmt.Sprintf("e:p%d", i)}, Severity: event.SeverityHigh, Title: "t",
			State: event.AlertOpen, Detector: "bulk", LastTime: now.Add(-72*time.Hour + time.Duration(i)*time.Minute)})
	}
	if err := e.st.SaveAlerts(ctx, alerts); err != nil {
		t.Fatal(err)
	}
	want, err := e.st.ListIncidents(ctx, store.IncidentQuery{Limit: 1000})
	if err != nil || len(want) != 112 {
		t.Fatalf("%d incidents (%v), want 112", len(want), err)
	}
	var got []string
	p, pages := "/incidents", 0
	for p != "" {
		ids, older := e.incidentsOn(t, p)
		if older != "" && len(ids) != 50 {
			t.Errorf("page %d (not the last) has %d incidents", pages, len(ids))
		}
		got = append(got, ids...)
		p = older
		pages++
	}
	var wantIDs []string
	for _, in := range want {
		wantIDs = append(wantIDs, in.ID)
	}
	if pages != 3 || !slices.Equal(got, wantIDs) {
		t.Errorf("%d pages, ids %v,\nwant %v", pages, got, wantIDs)
	}
	for q, n := range map[string]int{"severity=critical": 1, "severity=high": 111, "state=open": 112, "state=closed": 0} {
		var all []string
		for p := "/incidents?" + q; p != ""; {
			var ids []string
			ids, p = e.incidentsOn(t, p)
			all = append(all, ids...)
		}
		if len(all) != n {
			t.Errorf("%s: %d incidents, want %d", q, len(all), n)
		}
	}
	for _, bad := range []string{"state=done", "severity=huge", "cursor=!!"} {
		if w := e.do(t, "GET", "/incidents?"+bad, e.analyst, nil); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "Filter not applied") {
			t.Errorf("%s: %d", bad, w.Code)
		}
	}
	// The live script's refresh: only the rows, as many as the overview shows.
	w := e.do(t, "GET", "/incidents?partial=rows&state=open&top=10", e.analyst, nil)
	if rows := incRowRe.FindAllString(w.Body.String(), -1); w.Code != 200 || len(rows) != 10 || strings.Contains(w.Body.String(), "<html") {
		t.Errorf("rows fragment: %d, %d rows:\n%s", w.Code, len(rows), w.Body)
	}
}

// mergedIncident saves alerts about two principals, then one naming both:
// their incidents merge under the older one's id.
func mergedIncident(t *testing.T, e *env) (survivor, alias string) {
	t.Helper()
	at := now.Add(-10 * time.Hour)
	p, q := event.EntityKey{Kind: event.EntityPrincipal, ID: "e:m1"}, event.EntityKey{Kind: event.EntityPrincipal, ID: "e:m2"}
	one := func(id string, at time.Time, subject event.EntityKey, related ...event.EntityKey) event.Alert {
		return event.Alert{ID: id, Time: at, Entity: subject, Severity: event.SeverityHigh, Title: "Bulk read", State: event.AlertOpen,
			Detector: "d", LastTime: at, FindingCount: 1, Findings: []event.Finding{{Detector: "d", Kind: "k", Entity: subject, Time: at,
				Score: 80, Severity: event.SeverityHigh, Related: related}}}
	}
	for _, a := range []event.Alert{one("al-m1", at, p), one("al-m2", at.Add(time.Hour), q), one("al-m12", at.Add(2*time.Hour), event.EntityKey{Kind: event.EntityToken, ID: "tk-m"}, p, q)} {
		if err := e.st.SaveAlerts(context.Background(), []event.Alert{a}); err != nil {
			t.Fatal(err)
		}
	}
	return incident.IDFor("al-m1"), incident.IDFor("al-m2")
}

// TestIncidentAliasRedirects: a merged incident's id leads to the
// surviving incident, which says so.
func TestIncidentAliasRedirects(t *testing.T) {
	e := newEnv(t, true)
	survivor, alias := mergedIncident(t, e)
	w := e.do(t, "GET", "/incidents/"+alias, e.analyst, nil)
	if w.Code != http.StatusFound || w.Header().Get("Location") != "/incidents/"+survivor+"?merged="+alias {
		t.Fatalf("alias: %d %q", w.Code, w.Header().Get("Location"))
	}
	body := e.do(t, "GET", w.Header().Get("Location"), e.analyst, nil).Body.String()
	if !strings.Contains(body, `id="merged-note"`) || !strings.Contains(body, alias) || strings.Count(body, `<td><a href="/alerts/al-m`) != 3 {
		t.Errorf("the surviving incident's page:\n%s", body)
	}
	if w := e.do(t, "GET", "/incidents/in-nope", e.analyst, nil); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "There is no incident") {
		t.Errorf("unknown incident: %d", w.Code)
	}
}

// TestIncidentPage: an incident's page has its title, state, the timeline
// with each step's clock, the entity graph, the combined scope with its
// export, its alerts, its pending actions merged (deciding one comes back
// here) and its report; reading it is audited; each alert links to it.
func TestIncidentPage(t *testing.T) {
	e := newEnv(t, true)
	id := incident.IDFor("al-crit")
	body := e.do(t, "GET", "/incidents/"+id, e.analyst, nil).Body.String()
	section := func(name string) string {
		return regexp.MustCompile(`(?s)<section id="` + name + `">.*?</section>`).FindString(body)
	}
	for _, c := range []struct{ section, want string }{
		{"", `<h1 id="incident-title"><span class="badge critical">critical</span> Forged tokens: key k-1 (1 alert)`},
		{"", `<span class="state open">open</span>`},
		{"", `href="/incidents/` + id + `/report"`},
		{"timeline", `data-time-kind="event"`},
		{"timeline", `detected: Token used but never minted on key:k-1`},
		{"graph", `data-kind="keys"`},
		{"graph", `href="/entities/key/k-1">key:k-1</a>`},
		{"graph", `5 customer`},
		{"scope", `<b id="scope-total">5</b>`},
		{"scope", `href="/v1/scope?incident=` + id + `&amp;export=csv"`},
		{"scope", `<td>email</td><td class="num">5</td>`},
		{"alerts", `href="/alerts/al-crit"`},
		{"actions", `revoke_key`},
		{"actions", `name="back" value="incident"`},
	} {
		in := body
		if c.section != "" {
			in = section(c.section)
		}
		if !strings.Contains(in, c.want) {
			t.Errorf("section %q lacks %q:\n%s", c.section, c.want, in)
		}
	}
	if strings.Contains(section("alerts"), "al-low") {
		t.Error("the key's incident lists another incident's alert")
	}
	if !auditKind(t, e, "console_incident_scope_read") {
		t.Error("reading the incident's scope is not audited")
	}
	// The export link answers the incident's records.
	if w := e.do(t, "GET", "/v1/scope?incident="+id+"&export=csv", e.analyst, nil); w.Code != 200 || strings.Count(w.Body.String(), "\n") != 6 {
		t.Errorf("export: %d\n%s", w.Code, w.Body)
	}
	// Deciding a pending action from the incident page comes back to it.
	w := e.do(t, "POST", "/actions/act-1/approve", e.analyst, url.Values{"back": {"incident"}, "incident": {id}})
	if w.Code != http.StatusSeeOther || !strings.HasPrefix(w.Header().Get("Location"), "/incidents/"+id+"?done=approved") {
		t.Errorf("approve from the incident: %d %q", w.Code, w.Header().Get("Location"))
	}
	// The alert page links to its incident.
	if b := e.do(t, "GET", "/alerts/al-crit", e.analyst, nil).Body.String(); !strings.Contains(b, `id="incident-link" href="/incidents/`+id+`"`) {
		t.Error("the alert page does not link to its incident")
	}
	// The report, as HTML and Markdown.
	for _, f := range []string{"", "?format=md"} {
		w := e.do(t, "GET", "/incidents/"+id+"/report"+f, e.analyst, nil)
		if w.Code != 200 || !strings.Contains(w.Body.String(), "key k-1 (1 alert)") || !strings.Contains(w.Body.String(), id) {
			t.Errorf("report%s: %d\n%s", f, w.Code, w.Body)
		}
	}
}

// TestIncidentVerdictForm: the form preselects no verdict or state; a
// post with neither is refused, a false positive needs a reason, an
// ingest token may not post, a post without the session's CSRF token is
// refused; a verdict is recorded through the store (audited) and closes
// the incident.
func TestIncidentVerdictForm(t *testing.T) {
	e := newEnv(t, true)
	id := incident.IDFor("al-crit")
	sess, csrf := e.login(t, e.analyst)
	body := e.do(t, "GET", "/incidents/"+id, "", nil, sess).Body.String()
	form := regexp.MustCompile(`(?s)<section id="verdict">.*?</section>`).FindString(body)
	if strings.Count(form, `name="verdict"`) != 3 || strings.Count(form, `name="state"`) != 3 || strings.Contains(form, "checked") || !strings.Contains(form, csrf) {
		t.Fatalf("verdict form:\n%s", form)
	}
	for _, c := range []struct {
		form url.Values
		code int
		want string
	}{
		{url.Values{"csrf": {csrf}, "note": {"x"}}, 400, "No verdict or state was chosen"},
		{url.Values{"csrf": {csrf}, "verdict": {"false_positive"}}, 400, "needs a reason"},
		{url.Values{"csrf": {csrf}, "verdict": {"maybe"}}, 400, "Unknown verdict"},
		{url.Values{"csrf": {csrf}, "state": {"gone"}}, 400, "Unknown state"},
		{url.Values{"verdict": {"benign"}}, 403, "CSRF"},
	} {
		if w := e.do(t, "POST", "/incidents/"+id+"/verdict", "", c.form, sess); w.Code != c.code || !strings.Contains(w.Body.String(), c.want) {
			t.Errorf("%v: %d, want %d with %q", c.form, w.Code, c.code, c.want)
		}
	}
	if w := e.do(t, "POST", "/incidents/"+id+"/verdict", e.ingest, url.Values{"verdict": {"benign"}}); w.Code != http.StatusForbidden {
		t.Errorf("ingest token: %d, want 403", w.Code)
	}
	if in, _ := e.st.GetIncident(context.Background(), id); in.Verdict != "" || in.State != store.IncidentOpen {
		t.Fatalf("refused posts changed the incident: %+v", in)
	}
	w := e.do(t, "POST", "/incidents/"+id+"/verdict", "", url.Values{"csrf": {csrf}, "verdict": {"true_positive"}, "note": {"forged key"}}, sess)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/incidents/"+id+"?done=incident_verdict#verdict" {
		t.Fatalf("verdict: %d %q\n%s", w.Code, w.Header().Get("Location"), w.Body)
	}
	in, err := e.st.GetIncident(context.Background(), id)
	if err != nil || in.Verdict != store.VerdictTruePositive || in.State != store.IncidentClosed || !strings.Contains(in.VerdictBy, "analyst user") {
		t.Errorf("after the verdict: %+v (%v)", in, err)
	}
	if !auditKind(t, e, "incident_verdict") {
		t.Error("the verdict is not audited")
	}
	page := e.do(t, "GET", "/incidents/"+id+"?done=incident_verdict", "", nil, sess).Body.String()
	if !strings.Contains(page, "Incident state and verdict recorded") || !strings.Contains(page, `<span class="state closed">closed</span> · <b>true positive</b>`) {
		t.Errorf("the page after the verdict:\n%s", regexp.MustCompile(`(?s)<main>.*?</dl>`).FindString(page))
	}
}

// TestIncidentAlertsPaging: an incident's alerts are keyset-paged like the
// alerts list, and only its own.
func TestIncidentAlertsPaging(t *testing.T) {
	e := newEnv(t, true)
	var in []event.Alert
	for i := range 120 {
		in = append(in, event.Alert{ID: fmt.Sprintf("ia-%03d", i), Time: now.Add(-48*time.Hour + time.Duration(i)*time.Minute),
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:bulk"}, Severity: event.SeverityHigh, Title: "t",
			State: event.AlertOpen, Detector: "bulk"})
	}
	if err := e.st.SaveAlerts(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	id := incident.IDFor("ia-000")
	var got []string
	p, pages := "/incidents/"+id, 0
	for p != "" {
		ids, newer, older := e.page(t, strings.TrimSuffix(p, "#alerts"))
		if pages > 0 && newer == "" {
			t.Errorf("page %d has no newer link", pages)
		}
		got = append(got, ids...)
		p = older
		pages++
	}
	want := make([]string, 0, 120)
	for i := 119; i >= 0; i-- {
		want = append(want, fmt.Sprintf("ia-%03d", i))
	}
	// The page also links the founding alert in its facts.
	got = slices.DeleteFunc(got, func(s string) bool { return !strings.HasPrefix(s, "ia-") })
	if pages != 3 || !slices.Equal(slices.Compact(got), want) {
		t.Errorf("%d pages, %d alerts: %v", pages, len(got), got)
	}
}
