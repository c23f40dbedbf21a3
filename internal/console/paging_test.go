package console_test

import (
	"context"
	"fmt"
	"html"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

var (
	rowRe  = regexp.MustCompile(`<td><a href="/alerts/([^"]+)">`)
	linkRe = func(id string) *regexp.Regexp { return regexp.MustCompile(`id="` + id + `"[^>]* href="([^"]+)"`) }
)

// page fetches an alerts page and returns its alert ids and its newer and
// older links ("" when absent).
func (e *env) page(t *testing.T, p string) (ids []string, newer, older string) {
	t.Helper()
	w := e.do(t, "GET", p, e.analyst, nil)
	if w.Code != 200 {
		t.Fatalf("GET %s: %d\n%s", p, w.Code, w.Body)
	}
	body := w.Body.String()
	for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	if m := linkRe("page-newer").FindStringSubmatch(body); m != nil {
		newer = html.UnescapeString(m[1])
	}
	if m := linkRe("page-older").FindStringSubmatch(body); m != nil {
		older = html.UnescapeString(m[1])
	}
	return ids, newer, older
}

// TestAlertsPaging walks the alerts list by its links, 50 a page, while
// alerts are raised in between: each alert of the filter is shown once,
// in order; going back shows the same pages; the filter is applied by the
// store, so every page but the last is full.
func TestAlertsPaging(t *testing.T) {
	e := newEnv(t, true)
	ctx := context.Background()
	var in []event.Alert
	for i := range 140 {
		a := event.Alert{ID: fmt.Sprintf("pg-%03d", i), Time: now.Add(-48*time.Hour + time.Duration(i/2)*time.Minute),
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:9"}, Severity: event.SeverityHigh, Title: "t",
			State: event.AlertOpen, Detector: "bulk"}
		if i%5 == 0 {
			a.Severity = event.SeverityLow
		}
		in = append(in, a)
	}
	if err := e.st.SaveAlerts(ctx, in); err != nil {
		t.Fatal(err)
	}
	// high or above: 112 of ours and al-crit (the newest).
	var want []string
	for i := len(in) - 1; i >= 0; i-- {
		if in[i].Severity >= event.SeverityHigh {
			want = append(want, in[i].ID)
		}
	}
	want = append([]string{"al-crit"}, want...)

	var (
		seen  []string
		pages [][]string
		links []string
	)
	p := "/alerts?severity=high"
	for n := 0; p != ""; n++ {
		if n > 10 {
			t.Fatal("more than 10 pages")
		}
		ids, newer, older := e.page(t, p)
		if (n == 0) != (newer == "") {
			t.Errorf("page %d: newer link %q", n, newer)
		}
		if older != "" && len(ids) != 50 {
			t.Errorf("page %d has %d alerts and an older page", n, len(ids))
		}
		for _, l := range []string{newer, older} {
			if l != "" && !strings.Contains(l, "severity=high") {
				t.Errorf("page %d: link %q loses the filter", n, l)
			}
		}
		pages, links = append(pages, ids), append(links, p)
		seen = append(seen, ids...)
		// Raised meanwhile: a newer alert (goes on the first page).
		if err := e.st.SaveAlerts(ctx, []event.Alert{{ID: fmt.Sprintf("zz-new-%d", n), Time: now.Add(-time.Minute),
			Entity: event.EntityKey{Kind: event.EntityPrincipal, ID: "e:9"}, Severity: event.SeverityCritical, Title: "new",
			State: event.AlertOpen, Detector: "bulk"}}); err != nil {
			t.Fatal(err)
		}
		p = older
	}
	if len(pages) != 3 || !slices.Equal(seen, want) {
		t.Fatalf("%d pages; seen %d alerts, want %d:\n%v\nwant\n%v", len(pages), len(seen), len(want), seen, want)
	}
	// Back from the last page by the newer links: the same pages, the
	// alerts raised since above them; one more step newer reaches the
	// first page, which holds them.
	_, newer, _ := e.page(t, links[2])
	for i := 1; i >= 0; i-- {
		var ids []string
		ids, newer, _ = e.page(t, newer)
		if !slices.Equal(ids, pages[i]) || newer == "" {
			t.Fatalf("back to page %d: %v (newer %q), want %v", i, ids, newer, pages[i])
		}
	}
	ids, newer, older := e.page(t, newer)
	top := append([]string{"zz-new-2", "zz-new-1", "zz-new-0"}, pages[0][:47]...)
	if newer != "" || older == "" || !slices.Equal(ids, top) {
		t.Errorf("the first page again: newer %q, older %q, %v, want %v", newer, older, ids, top)
	}
	// A cursor that is not one is refused with a clear message.
	w := e.do(t, "GET", "/alerts?cursor=%21%21", e.analyst, nil)
	if w.Code != 400 || !strings.Contains(w.Body.String(), "not a page link of this list") {
		t.Errorf("bad cursor: %d", w.Code)
	}
}
