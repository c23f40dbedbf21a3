package console_test

import (
	"regexp"
	"strings"
	"testing"
)

// TestTimelineTimeKinds: the alert page's timeline tags every time as
// event time (accesses, the detection) or wall time (actions), with a
// legend; so does the incident report.
func TestTimelineTimeKinds(t *testing.T) {
	e := newEnv(t, true)
	sess, _ := e.login(t, e.analyst)
	body := e.do(t, "GET", "/alerts/al-crit", "", nil, sess).Body.String()
	tl := regexp.MustCompile(`(?s)<section id="timeline">.*?</section>`).FindString(body)
	if !strings.Contains(tl, `class="muted legend"`) {
		t.Errorf("timeline without a legend:\n%s", tl)
	}
	steps := regexp.MustCompile(`<li data-time-kind="(\w*)">.*?</span> (.*?)</li>`).FindAllStringSubmatch(tl, -1)
	if len(steps) != 5 {
		t.Fatalf("%d timeline steps, want 5:\n%s", len(steps), tl)
	}
	for _, s := range steps {
		want := "event"
		if strings.HasPrefix(s[2], "action ") {
			want = "wall"
		}
		if s[1] != want {
			t.Errorf("step %q is marked %q, want %q", s[2], s[1], want)
		}
	}
	md := e.do(t, "GET", "/alerts/al-crit/report?format=md", "", nil, sess).Body.String()
	for _, s := range []string{"UTC (event time) — detected", "UTC (wall time) — action "} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}
