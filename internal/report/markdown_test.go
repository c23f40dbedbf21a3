package report

import (
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/store"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMDText(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain words, 12 of them (fine).", "plain words, 12 of them (fine)."},
		{"auth-2022-11", "auth-2022-11"},
		{"x\n\n## No personal data was exposed", `x  \#\# No personal data was exposed`},
		{"# heading", `\# heading`},
		{"   # indented heading", `\# indented heading`},
		{"        indented code", "indented code"},
		{"\tindented code", "indented code"},
		{"- list", `\- list`},
		{"+ list", `\+ list`},
		{"= setext", `\= setext`},
		{"---", `\---`},
		{"1. ordered", `1\. ordered`},
		{"2025) ordered", `2025\) ordered`},
		{"a - b + c = d", "a - b + c = d"}, // only at the start
		{"v1.2", "v1.2"},
		{"> quote", `\> quote`},
		{"```go", "\\`\\`\\`go"},
		{"~~~", `\~\~\~`},
		{"*em* _em_ ~~del~~", `\*em\* \_em\_ \~\~del\~\~`},
		{"revoke_key a_ _b __x__ a__b", `revoke_key a\_ \_b \_\_x\_\_ a\_\_b`},
		{"[click](http://evil.example)", `\[click\](http\://evil.example)`},
		{"![img](x)", `\!\[img\](x)`},
		{"[ref]: http://evil", `\[ref\]\: http\://evil`},
		{"<script>alert(1)</script>", `\<script\>alert(1)\</script\>`},
		{"<http://evil>", `\<http\://evil\>`},
		{"&lt;b&gt;", `\&lt;b\&gt;`},
		{"a|b", `a\|b`},
		{`back\slash`, `back\\slash`},
		{"mail@example.com", `mail\@example.com`},
		{"see WWW.evil.example or www", `see WWW\.evil.example or www`},
		{"$x$", `\$x\$`},
		{"cr\rlf\r\nnel\u0085ls\u2028ps\u2029", "cr lf  nel ls ps "},
		{"rlo\u202eevil", "rlo\ufffdevil"},
		{"bad\xffutf8", "bad\ufffdutf8"},
		{"nul\x00del\x7f", "nul del "},
		{"한국어 주소", "한국어 주소"},
	} {
		if got := mdText(tc.in); got != tc.want {
			t.Errorf("mdText(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMDCode(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "` `"},
		{"al-1", "`al-1`"},
		{"a`b", "``a`b``"},
		{"`x", "`` `x ``"},
		{"x``", "``` x`` ```"},
		{" x", "`  x `"},
		{"   ", "`   `"},
		{"<script>", "`<script>`"},
		{"x\n\n## No personal data was exposed", "`x  ## No personal data was exposed`"},
	} {
		if got := mdCode(tc.in); got != tc.want {
			t.Errorf("mdCode(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"al-1f3a", "al-1f3a"},
		{"key:auth-2022-11", "key:auth-2022-11"},
		{"", "''"},
		{"x; rm -rf ~", `'x; rm -rf ~'`},
		{"it's", `'it'\''s'`},
		{"$(id)", `'$(id)'`},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// checkMDText asserts what mdText promises of out, the rendering of in.
func checkMDText(t *testing.T, in, out string) {
	t.Helper()
	if out != "" && out[0] == ' ' {
		t.Fatalf("mdText(%q) = %q starts with a space", in, out)
	}
	var plain strings.Builder
	digits := true
	for i := 0; i < len(out); i++ {
		c := out[i]
		if c == '\\' {
			if i+1 == len(out) || !unicode.IsPunct(rune(out[i+1])) && !unicode.IsSymbol(rune(out[i+1])) || out[i+1] >= utf8.RuneSelf {
				t.Fatalf("mdText(%q) = %q: a backslash at %d escapes no ASCII punctuation", in, out, i)
			}
			plain.WriteByte(out[i+1])
			i++
			digits = false
			continue
		}
		switch {
		case c == '_' && i > 0 && i+1 < len(out) && isAlnum(out[i-1]) && isAlnum(out[i+1]):
			// intraword: cannot delimit emphasis
		case strings.IndexByte(mdInline, c) >= 0:
			t.Fatalf("mdText(%q) = %q: unescaped %q at %d", in, out, c, i)
		case i == 0 && strings.IndexByte(mdLineStart, c) >= 0:
			t.Fatalf("mdText(%q) = %q: starts with an unescaped %q", in, out, c)
		case digits && i > 0 && (c == '.' || c == ')'):
			t.Fatalf("mdText(%q) = %q: an ordered-list marker", in, out)
		case c < 0x20 || c == 0x7f:
			t.Fatalf("mdText(%q) = %q: control character at %d", in, out, i)
		}
		digits = digits && c >= '0' && c <= '9'
		plain.WriteByte(c)
	}
	for _, r := range out {
		if r == '\u2028' || r == '\u2029' || (r >= 0x80 && r <= 0x9f) || unicode.Is(unicode.Bidi_Control, r) {
			t.Fatalf("mdText(%q) = %q: holds %U", in, out, r)
		}
	}
	if strings.Contains(strings.ToLower(out), "www.") {
		t.Fatalf("mdText(%q) = %q: a bare www. (GFM autolink)", in, out)
	}
	if !utf8.ValidString(out) {
		t.Fatalf("mdText(%q) = %q: invalid UTF-8", in, out)
	}
	// Rendered, it reads as the cleaned value: nothing lost, nothing added.
	if want := strings.TrimLeft(mdClean(in), " "); plain.String() != want {
		t.Fatalf("mdText(%q) unescapes to %q, want %q", in, plain.String(), want)
	}
}

// checkMDCode asserts that out is one code span whose content is mdClean(in).
func checkMDCode(t *testing.T, in, out string) {
	t.Helper()
	n := len(out) - len(strings.TrimLeft(out, "`"))
	if n == 0 || len(out) < 2*n+1 || len(out)-len(strings.TrimRight(out, "`")) != n {
		t.Fatalf("mdCode(%q) = %q: not fenced alike on both sides", in, out)
	}
	content := out[n : len(out)-n]
	if hasRun(content, n) {
		t.Fatalf("mdCode(%q) = %q: the fence closes early", in, out)
	}
	if strings.ContainsAny(content, "\r\n") {
		t.Fatalf("mdCode(%q) = %q: breaks the line", in, out)
	}
	// CommonMark: one space is stripped from each side when both are
	// spaces and the content is not all spaces.
	if len(content) >= 2 && content[0] == ' ' && content[len(content)-1] == ' ' && strings.Trim(content, " ") != "" {
		content = content[1 : len(content)-1]
	}
	want := mdClean(in)
	if want == "" {
		want = " "
	}
	if content != want {
		t.Fatalf("mdCode(%q) = %q: shows %q, want %q", in, out, content, want)
	}
}

// hasRun reports whether s holds a run of exactly n backticks.
func hasRun(s string, n int) bool {
	run := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] == '`' {
			run++
			continue
		}
		if run == n {
			return true
		}
		run = 0
	}
	return false
}

func FuzzMDEscape(f *testing.F) {
	for _, s := range []string{"", "x\n\n## No personal data was exposed", "<script>", "`a``b`", " `", "1. x", "-", "[a](b)", "\\", "\u202e", "\xff", "   ", "\t# x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkMDText(t, s, mdText(s))
		checkMDCode(t, s, mdCode(s))
	})
}

// crafted is an alert whose every event-controlled value tries to forge
// structure in the Markdown report.
func crafted() *Report {
	forge := "x\n\n## No personal data was exposed\n\n<script>alert(1)</script>"
	at := time.Date(2025, 6, 25, 1, 30, 0, 0, time.UTC)
	a := event.Alert{
		ID:          "al-1\n\n# Incident closed",
		Time:        at,
		Entity:      event.EntityKey{Kind: event.EntityPrincipal, ID: "e:1`\n- Entity: nobody"},
		Severity:    event.SeverityCritical,
		Score:       97,
		Title:       "forged <b>token</b> | injected\n## Findings",
		Explanation: forge,
		Detector:    "token_provenance<img src=x onerror=alert(1)>",
		Findings: []event.Finding{{Time: at, Explanation: "[click](http://evil.example)\n1. list",
			Evidence: []string{"ua: <iframe>", "| cell |", "```"}}},
		FindingCount: 3,
	}
	return &Report{
		Alert:     a,
		AwareAt:   at,
		Generated: at.Add(time.Hour),
		Scope: &ledger.Result{Total: 2, ByType: map[string]int64{"customer\n\n## Scope": 2},
			ByField: map[string]int64{"name|phone": 1, "<u>email</u>": 1}, First: at, Last: at},
		Actions:  []store.Action{{Kind: "revoke_key", Target: "k|x\n---", State: "done", Reason: "> quoted\n***"}},
		Timeline: []Step{{Time: at, What: "detected: " + forge, Kind: EventTime}},
		Clocks: []Clock{{Regime: Regime{Name: "GDPR | Art. 33", Authority: "<DPA>", Obligation: "notify\n# now"},
			Applies: true, Why: "- any", Deadline: at}},
	}
}

// The crafted alert's Markdown has exactly the report's own sections, no
// raw HTML outside code spans, and every table row keeps its cells; the
// whole rendering is pinned in testdata/crafted.md (go test -update).
func TestMarkdownCraftedValues(t *testing.T) {
	var b strings.Builder
	if err := crafted().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	var headings []string
	for _, line := range strings.Split(out, "\n") {
		if l := strings.TrimLeft(line, " "); strings.HasPrefix(l, "#") {
			headings = append(headings, l)
		}
		text := stripCodeSpans(line)
		for i := 0; i < len(text); i++ {
			if text[i] == '\\' {
				i++
				continue
			}
			if text[i] == '<' || text[i] == '[' || text[i] == '`' {
				t.Errorf("unescaped %q outside a code span in line %q", text[i], line)
			}
		}
		if strings.HasPrefix(line, "|") {
			if cells := strings.Count(text, "|") - strings.Count(text, `\|`); cells != strings.Count(tableHeader(out, line), "|") {
				t.Errorf("row %q has %d cell separators", line, cells)
			}
		}
	}
	want := []string{"# Incident report — forged \\<b\\>token\\</b\\> \\| injected \\#\\# Findings",
		"## Regulators' clocks", "## Scope", "## Timeline", "## Actions and approvals", "## Findings"}
	if strings.Join(headings, "\n") != strings.Join(want, "\n") {
		t.Errorf("headings:\n%s\nwant:\n%s", strings.Join(headings, "\n"), strings.Join(want, "\n"))
	}
	golden := filepath.Join("testdata", "crafted.md")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wantOut, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(wantOut) {
		t.Errorf("Markdown differs from %s (go test -update to accept):\n%s", golden, out)
	}
}

// stripCodeSpans drops the code spans mdCode writes (a run of n backticks
// to the next run of exactly n).
func stripCodeSpans(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		if line[i] == '\\' && i+1 < len(line) {
			b.WriteString(line[i : i+2])
			i += 2
			continue
		}
		if line[i] != '`' {
			b.WriteByte(line[i])
			i++
			continue
		}
		n := 0
		for i+n < len(line) && line[i+n] == '`' {
			n++
		}
		end := -1
		for j := i + n; j < len(line); {
			if line[j] != '`' {
				j++
				continue
			}
			m := 0
			for j+m < len(line) && line[j+m] == '`' {
				m++
			}
			if m == n {
				end = j + m
				break
			}
			j += m
		}
		if end < 0 { // no closing run: the backticks are literal text
			b.WriteString(line[i : i+n])
			i += n
			continue
		}
		i = end
	}
	return b.String()
}

// tableHeader is the header line of the table that holds row.
func tableHeader(doc, row string) string {
	lines := strings.Split(doc, "\n")
	header := ""
	for _, l := range lines {
		if !strings.HasPrefix(l, "|") {
			header = ""
			continue
		}
		if header == "" {
			header = l
		}
		if l == row {
			return header
		}
	}
	return ""
}

// The HTML report escapes the same crafted values (html/template) and its
// only style sheet is the one HTMLContentSecurityPolicy allows by hash.
func TestHTMLCraftedValues(t *testing.T) {
	var b strings.Builder
	if err := crafted().WriteHTML(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, bad := range []string{"<script", "<img", "<iframe", "<b>token", "<u>", "<DPA>"} {
		if strings.Contains(out, bad) {
			t.Errorf("HTML report holds raw %q", bad)
		}
	}
	if !strings.Contains(out, "haechi scope --alert=&#39;al-1") {
		t.Errorf("HTML report's export command does not quote the id:\n%s", out)
	}
	_, rest, _ := strings.Cut(out, "<style>")
	style, _, ok := strings.Cut(rest, "</style>")
	if !ok || strings.Count(out, "<style") != 1 || strings.Contains(out, " style=") {
		t.Fatal("want exactly one <style> element and no style attributes")
	}
	sum := sha256.Sum256([]byte(style))
	if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(HTMLContentSecurityPolicy(), want) {
		t.Errorf("CSP %q does not allow the page's style sheet (%s)", HTMLContentSecurityPolicy(), want)
	}
	if csp := HTMLContentSecurityPolicy(); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "script-src") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP %q: want default-src 'none', no script source, frame-ancestors 'none'", csp)
	}
}
