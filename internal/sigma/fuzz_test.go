package sigma

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/haechi-sec/haechi/internal/event"
)

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"rules", "unsupported", "invalid"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yml"))
		for _, p := range files {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("title: x\nlogsource: {category: webserver}\ndetection: {s: {c-ip|cidr: ::/0}, condition: ((((s))))}\n"))
	f.Add([]byte("title: x\nlogsource: {category: proxy}\ndetection: {k: ['*\\\\*?'], condition: not not k}\n"))
	events := []*event.Event{webEvent(nil), ctEvent(nil), {}}
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		r, err := Parse(data, "fuzz.yml")
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("Parse took %v on %q", d, data)
		}
		if err != nil {
			var ue *UnsupportedError
			var re *RuleError
			if !errors.As(err, &ue) && !errors.As(err, &re) {
				t.Fatalf("error %v is %T", err, err)
			}
			if !strings.HasPrefix(err.Error(), "fuzz.yml") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if r.Title == "" {
			t.Fatal("rule without a title")
		}
		for _, ev := range events {
			if _, err := r.Match(ev); err != nil {
				t.Fatalf("Match: %v", err)
			}
		}
	})
}

// refItem is one element of a wildcard pattern in the reference matcher.
type refItem struct {
	r    rune
	star bool
	any  bool
}

// refParse reads Sigma escapes independently of parseWildcards.
func refParse(p string) []refItem {
	var out []refItem
	rs := []rune(p)
	for i := 0; i < len(rs); i++ {
		switch {
		case rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune(`*?\`, rs[i+1]):
			out = append(out, refItem{r: rs[i+1]})
			i++
		case rs[i] == '*':
			out = append(out, refItem{star: true})
		case rs[i] == '?':
			out = append(out, refItem{any: true})
		default:
			out = append(out, refItem{r: rs[i]})
		}
	}
	return out
}

// refMatch is the textbook dynamic program for wildcard matching over runes.
func refMatch(pat []refItem, s string, cased bool) bool {
	rs := []rune(s)
	// dp[j]: pat[:i] matches rs[:j]
	dp := make([]bool, len(rs)+1)
	dp[0] = true
	for _, it := range pat {
		next := make([]bool, len(rs)+1)
		if it.star {
			seen := false
			for j := range dp {
				seen = seen || dp[j]
				next[j] = seen
			}
		} else {
			for j := 1; j <= len(rs); j++ {
				if !dp[j-1] {
					continue
				}
				r := rs[j-1]
				next[j] = it.any || it.r == r || (!cased && strings.EqualFold(string(it.r), string(r)))
			}
		}
		dp = next
	}
	return dp[len(rs)]
}

func FuzzPattern(f *testing.F) {
	for _, c := range [][2]string{
		{"*", ""}, {"a*b?c", "AxxbYc"}, {`\*\?\\`, `*?\`}, {"*/.env*", "/app/.ENV.local"},
		{"straße*", "STRASSE"}, {"k?", "\u212ax"}, {"*a*a*a*", "aaaa"}, {"?*?", "é"}, {`a\`, `a\`},
		{"*.git/config", "/x/.git/config"}, {"ſ", "S"}, {"**", "x"}, {"*ab*ab", "abab"},
	} {
		f.Add(c[0], c[1], false)
		f.Add(c[0], c[1], true)
	}
	f.Fuzz(func(t *testing.T, pat, s string, cased bool) {
		if !utf8.ValidString(pat) || !utf8.ValidString(s) || len(pat) > 256 || len(s) > 1024 {
			t.Skip() // event strings are valid UTF-8 (the decoder rejects others)
		}
		items := refParse(pat)
		check := func(name string, p *pattern, ref []refItem) {
			if got, want := p.match(s), refMatch(ref, s, cased); got != want {
				t.Fatalf("%s pattern %q cased=%v on %q: got %v, want %v", name, pat, cased, s, got, want)
			}
		}
		star := refItem{star: true}
		check("plain", compilePattern(pat, cased), items)
		segs := parseWildcards(pat)
		check("contains", newPattern(wrapSegs(segs, true, true), cased), append(append([]refItem{star}, items...), star))
		check("startswith", newPattern(wrapSegs(segs, false, true), cased), append(append([]refItem{}, items...), star))
		check("endswith", newPattern(wrapSegs(segs, true, false), cased), append([]refItem{star}, items...))
	})
}
