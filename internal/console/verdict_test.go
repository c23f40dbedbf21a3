package console_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestVerdictNotPreselected: the verdict form preselects nothing (a
// verdict is always a decision), and a post without one is refused with
// a message that says so, recording nothing.
func TestVerdictNotPreselected(t *testing.T) {
	e := newEnv(t, true)
	sess, csrf := e.login(t, e.analyst)
	body := e.do(t, "GET", "/alerts/al-crit", "", nil, sess).Body.String()
	form := regexp.MustCompile(`(?s)<section id="feedback">.*?</section>`).FindString(body)
	if n := strings.Count(form, `type="radio" name="verdict"`); n != 3 {
		t.Fatalf("verdict form has %d choices, want 3:\n%s", n, form)
	}
	for _, s := range []string{"checked", "selected", "<select"} {
		if strings.Contains(form, s) {
			t.Errorf("verdict form has %q:\n%s", s, form)
		}
	}
	if !strings.Contains(form, "required") {
		t.Error("the browser is not told a verdict is required")
	}
	for _, v := range []url.Values{
		{"csrf": {csrf}, "note": {"looks fine"}},
		{"csrf": {csrf}, "verdict": {""}, "note": {"looks fine"}},
	} {
		w := e.do(t, "POST", "/alerts/al-crit/feedback", "", v, sess)
		if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "No verdict was chosen") {
			t.Errorf("verdict %q: %d\n%s", v.Get("verdict"), w.Code, w.Body)
		}
	}
	if fb, _ := e.st.ListFeedback(context.Background(), "al-crit"); len(fb) != 0 {
		t.Errorf("a post without a verdict recorded %+v", fb)
	}
}
