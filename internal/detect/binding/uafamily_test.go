package binding

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseFamily(t *testing.T) {
	for _, tc := range []struct {
		ua   string
		want string
	}{
		{"", "unknown client"},
		{"   ", "unknown client"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1", "Safari on iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148", "in-app WebView on iOS"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1", "Chrome on iOS"},
		{"Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15", "Firefox on iOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15", "Safari on macOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "Chrome on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.2210.91", "Edge on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 OPR/106.0.0.0", "Opera on Windows"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "Firefox on Linux"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918N) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36", "Samsung Internet on Android"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36", "Chrome on Android"},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 Mobile Safari/537.36", "in-app WebView on Android"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "Chrome on ChromeOS"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", "headless browser on Linux"},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"},
		{"Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko", "browser on Windows"},
		{"Opera/9.80 (Windows NT 6.1) Presto/2.12.388 Version/12.18", "Opera on Windows"},
		{"python-requests/2.32.3", "HTTP library"},
		{"curl/8.5.0", "HTTP library"},
		{"Go-http-client/2.0", "HTTP library"},
		{"okhttp/4.12.0", "HTTP library"},
		{"Java/21.0.1", "HTTP library"},
		{"ExampleShop/8.4.1 (Android 14) okhttp/4.12.0", "native app on Android"},
		{"ExampleShop/8.4.1 (iPhone; iOS 18.5) CFNetwork/1490 Darwin/24.5.0", "native app on iOS"},
		{"Microsoft Office/16.0 (Macintosh; Mac OS X 10.15)", "native app on macOS"},
		{"curly-app/1.0", "native app"},
		{"(weird)", "unknown client"},
	} {
		if got := ParseFamily(tc.ua).String(); got != tc.want {
			t.Errorf("ParseFamily(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}

func TestFamilyCode(t *testing.T) {
	for c := range numClients {
		for o := range numOS {
			f := Family{Client: c, OS: o}
			if got := familyOf(f.code()); got != f {
				t.Errorf("familyOf(code(%v)) = %v", f, got)
			}
		}
	}
	if !familyOf(0).IsZero() || familyOf(0xffff) != (Family{}) {
		t.Error("out-of-range codes do not read as unknown")
	}
}

// FuzzParseFamily: the parser never panics, returns values in range, is
// deterministic and ignores surrounding space and bytes past maxUA.
func FuzzParseFamily(f *testing.F) {
	for _, s := range []string{"", "Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		"python-requests/2.32.3", "ExampleShop/8.4.1 (Android 14) okhttp/4.12.0", "Mozilla/5.0 (compatible; bingbot/2.0)", "\x00(/", "Opera"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ua string) {
		got := ParseFamily(ua)
		if got.Client >= numClients || got.OS >= numOS {
			t.Fatalf("ParseFamily(%q) = %+v out of range", ua, got)
		}
		if got != ParseFamily(ua) {
			t.Fatal("not deterministic")
		}
		if p := ParseFamily(" " + ua + " "); p != got && utf8.ValidString(ua) && strings.TrimSpace(ua) == ua {
			t.Fatalf("surrounding space changed %q: %+v vs %+v", ua, p, got)
		}
		if familyOf(got.code()) != got {
			t.Fatalf("code round trip of %+v", got)
		}
		_ = got.String()
	})
}

func TestInteractiveAndAutomated(t *testing.T) {
	for _, tc := range []struct {
		ua          string
		interactive bool
		// automated on the binding's platform: unknown, Android, iOS.
		onUnknown, onAndroid, onIOS bool
	}{
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.5 Mobile/15E148 Safari/604.1", true, false, false, false},
		{"ExampleShop/8.4.1 (Android 14) okhttp/4.12.0", true, false, false, false},
		{"PartnerSync/2.1", false, false, false, false}, // a tool naming no platform
		{"python-requests/2.32.3", false, true, true, true},
		{"Python-Requests/2.32.3", false, true, true, true},
		{"curl/8.5.0", false, true, true, true},
		{"Java/21.0.1", false, true, true, true},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", false, true, true, true},
		// Platform stacks: an app's background requests on its own platform.
		{"okhttp/4.12.0", false, false, false, true},
		{"CFNetwork/1568.100.1 Darwin/24.0.0", false, false, true, false},
		// Link previewers and crawlers are not counted.
		{"Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", false, false, false, false},
		{"", false, false, false, false},
	} {
		if got := ParseFamily(tc.ua).Interactive(); got != tc.interactive {
			t.Errorf("ParseFamily(%q).Interactive() = %v", tc.ua, got)
		}
		for _, c := range []struct {
			on   OS
			want bool
		}{{OSUnknown, tc.onUnknown}, {OSAndroid, tc.onAndroid}, {OSIOS, tc.onIOS}} {
			if got := Automated(tc.ua, c.on); got != c.want {
				t.Errorf("Automated(%q, %v) = %v, want %v", tc.ua, c.on, got, c.want)
			}
		}
	}
	if n := testing.AllocsPerRun(100, func() { Automated("ExampleShop/8.4.1 (Android 14) okhttp/4.12.0", OSAndroid) }); n != 0 {
		t.Errorf("Automated allocates %.0f times", n)
	}
}

// FuzzAutomated: the allocation-free Automated agrees with ParseFamily's
// classes on ASCII agents (headless browser, or a library that is not a
// native stack of the platform).
func FuzzAutomated(f *testing.F) {
	for _, s := range []string{"", "python-requests/2.32.3", "okhttp/4.12.0", "CFNetwork/1 Darwin/2", "Mozilla/5.0 HeadlessChrome/1",
		"curl", "Opera phantomjs", "ExampleShop/8.4.1 (Android 14) okhttp/4.12.0", " curl/8 "} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, ua string, os uint8) {
		on := OS(os % uint8(numOS))
		got := Automated(ua, on)
		for i := 0; i < len(ua); i++ {
			if ua[i] >= utf8.RuneSelf {
				return
			}
		}
		fam := ParseFamily(ua)
		want := fam.Client == ClientHeadless
		if fam.Client == ClientLibrary {
			l := strings.ToLower(strings.TrimSpace(ua))
			if len(l) > maxUA {
				l = l[:maxUA]
			}
			native := false
			for o, stacks := range nativeStacks {
				for _, lib := range stacks {
					if (on == OSUnknown || OS(o) == on) && strings.HasPrefix(l, lib) && (len(l) == len(lib) || l[len(lib)] == '/' || l[len(lib)] == ' ') {
						native = true
					}
				}
			}
			want = !native
		}
		if got != want {
			t.Fatalf("Automated(%q, %v) = %v, ParseFamily says %+v", ua, on, got, fam)
		}
	})
}
