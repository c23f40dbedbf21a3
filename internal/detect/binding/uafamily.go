package binding

import "strings"

// Client is the kind of HTTP client a user agent names.
type Client uint8

// Clients. The zero value is "unknown" (no user agent, or nothing
// recognisable in it).
const (
	ClientUnknown Client = iota
	ClientChrome
	ClientEdge
	ClientFirefox
	ClientSafari
	ClientOpera
	ClientSamsung
	ClientWebView  // an app's embedded browser (Android wv, iOS WKWebView)
	ClientBrowser  // another Mozilla-compatible browser
	ClientHeadless // a headless browser (HeadlessChrome, PhantomJS)
	ClientBot      // a self-declared crawler
	ClientLibrary  // an HTTP library's default user agent (python-requests, curl, okhttp)
	ClientApp      // a native app naming itself first ("ExampleShop/8.4.1 (Android 14)")
	numClients
)

var clientNames = [numClients]string{"unknown client", "Chrome", "Edge", "Firefox", "Safari", "Opera",
	"Samsung Internet", "in-app WebView", "browser", "headless browser", "crawler", "HTTP library", "native app"}

// OS is the operating system a user agent names.
type OS uint8

// Operating systems; the zero value is "unknown".
const (
	OSUnknown OS = iota
	OSWindows
	OSMacOS
	OSIOS
	OSAndroid
	OSLinux
	OSChromeOS
	numOS
)

var osNames = [numOS]string{"", "Windows", "macOS", "iOS", "Android", "Linux", "ChromeOS"}

// Family is a user agent's family: the kind of client and the operating
// system, without versions. A phone's browser updating itself keeps its
// family; a stolen session replayed from a script or another platform
// does not.
type Family struct {
	Client Client
	OS     OS
}

// String renders "Safari on iOS", "HTTP library", "unknown client".
func (f Family) String() string {
	c := clientNames[ClientUnknown]
	if f.Client < numClients {
		c = clientNames[f.Client]
	}
	if f.OS != OSUnknown && f.OS < numOS {
		return c + " on " + osNames[f.OS]
	}
	return c
}

// IsZero reports whether nothing was recognised.
func (f Family) IsZero() bool { return f == Family{} }

// code packs f into 16 bits for compact state; 0 is the zero Family.
func (f Family) code() uint16 { return uint16(f.Client)<<8 | uint16(f.OS) }

// familyOf unpacks code (anything out of range reads as unknown parts).
func familyOf(c uint16) Family {
	f := Family{Client: Client(c >> 8), OS: OS(c & 0xff)}
	if f.Client >= numClients {
		f.Client = ClientUnknown
	}
	if f.OS >= numOS {
		f.OS = OSUnknown
	}
	return f
}

// maxUA bounds how much of a user agent is read: real ones are under 512
// bytes; an attacker's 1 MB header costs no more than this.
const maxUA = 1024

// libraries are the product names HTTP libraries and command-line tools
// put first in their default user agents ("python-requests/2.32.3",
// "curl/8.5.0", "Go-http-client/2.0"). A name matches the start of the
// agent followed by "/", " " or the end (see isLibrary).
var libraries = []string{
	"python-requests", "python-urllib", "python-httpx", "aiohttp", "scrapy", "httpie",
	"curl", "wget", "go-http-client", "okhttp", "java", "apache-httpclient", "jakarta commons-httpclient",
	"node-fetch", "axios", "undici", "got", "libwww-perl", "lwp-useragent", "ruby", "faraday",
	"guzzlehttp", "php", "rest-client", "dart", "reqwest", "postmanruntime", "insomnia", "powershell",
	"winhttp", "cfnetwork",
}

// ParseFamily derives the family of a user_agent.original value. It is a
// small rule set over the structure every user agent shares — product
// tokens ("Name/version") and parenthesised comments — not a device
// database:
//
//   - OS from the comments: Windows; iPhone, iPad, iPod or "CPU OS" → iOS
//     (before macOS, since iOS agents also say "Mac OS X"); Android (before
//     Linux); CrOS → ChromeOS; Macintosh or Mac OS X → macOS; Linux or X11
//     → Linux.
//   - A first product "Mozilla" is a browser, named by the most specific
//     product token present, in the order browsers copy each other's
//     tokens: HeadlessChrome/PhantomJS, Edg*, OPR/Opera, SamsungBrowser,
//     Firefox/FxiOS, an Android "wv" comment (WebView), CriOS/Chrome/
//     Chromium, then Safari (Version/ or Safari/ on Apple platforms). An
//     iOS agent with AppleWebKit and neither Safari/ nor another browser
//     token is an app's WKWebView. "compatible;" with bot, crawler or
//     spider is a crawler.
//   - Any other first product is an HTTP library when its name (before
//     "/") is a known library's, else a native app.
//
// Matching is case-insensitive and reads at most the first 1 KiB. It never
// fails: what it cannot place is ClientUnknown / OSUnknown. Known to be
// coarse: every Chromium derivative that hides its name (Brave, Vivaldi)
// is Chrome, and an attacker can copy a victim's user agent exactly —
// the family is context for the network signals, never a signal alone.
func ParseFamily(ua string) Family {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return Family{}
	}
	if len(ua) > maxUA {
		ua = ua[:maxUA]
	}
	l := strings.ToLower(ua)
	f := Family{OS: parseOS(l)}
	first := l
	if i := strings.IndexAny(first, " (/"); i >= 0 {
		first = first[:i]
	}
	if first != "mozilla" && first != "opera" {
		switch {
		case first == "":
			f.Client = ClientUnknown
		case isLibrary(l):
			f.Client = ClientLibrary
		default:
			f.Client = ClientApp
		}
		return f
	}
	has := func(s string) bool { return strings.Contains(l, s) }
	switch {
	case has("headlesschrome") || has("phantomjs"):
		f.Client = ClientHeadless
	case has("compatible;") && (has("bot") || has("crawler") || has("spider")):
		f.Client = ClientBot
	case has("edg/") || has("edga/") || has("edgios/") || has("edge/"):
		f.Client = ClientEdge
	case has("opr/") || has("opios/") || first == "opera":
		f.Client = ClientOpera
	case has("samsungbrowser/"):
		f.Client = ClientSamsung
	case has("firefox/") || has("fxios/"):
		f.Client = ClientFirefox
	case f.OS == OSAndroid && has("; wv)"):
		f.Client = ClientWebView
	case has("crios/") || has("chrome/") || has("chromium/"):
		f.Client = ClientChrome
	case (f.OS == OSIOS || f.OS == OSMacOS) && (has("version/") || has("safari/")):
		f.Client = ClientSafari
	case f.OS == OSIOS && has("applewebkit"):
		f.Client = ClientWebView
	default:
		f.Client = ClientBrowser
	}
	return f
}

func parseOS(l string) OS {
	has := func(s string) bool { return strings.Contains(l, s) }
	switch {
	case has("windows"):
		return OSWindows
	case has("iphone") || has("ipad") || has("ipod") || has("cpu os"):
		return OSIOS
	case has("android"):
		return OSAndroid
	case has(" cros ") || has("(cros "):
		return OSChromeOS
	case has("macintosh") || has("mac os x"):
		return OSMacOS
	case has("linux") || has("x11"):
		return OSLinux
	}
	return OSUnknown
}

// isLibrary reports whether the lower-case agent l starts with a known
// library's product name, followed by "/", " " or nothing.
func isLibrary(l string) bool {
	for _, lib := range libraries {
		if strings.HasPrefix(l, lib) && (len(l) == len(lib) || l[len(lib)] == '/' || l[len(lib)] == ' ') {
			return true
		}
	}
	return false
}

// Interactive reports whether f is a person's client: a browser, an
// in-app WebView, or a native app that names its platform. A native app
// without a platform ("PartnerSync/2.1") is as likely a server's tool as a
// person's app, and is not.
func (f Family) Interactive() bool {
	switch f.Client {
	case ClientChrome, ClientEdge, ClientFirefox, ClientSafari, ClientOpera, ClientSamsung, ClientWebView, ClientBrowser:
		return true
	case ClientApp:
		return f.OS != OSUnknown
	}
	return false
}

// nativeStacks are the HTTP libraries an operating system's apps are built
// on, by their product name: an app's background requests (a sync job, a
// push handler, a download manager) may carry the stack's default agent
// instead of the app's own.
var nativeStacks = [numOS][]string{
	OSAndroid: {"okhttp", "apache-httpclient"},
	OSIOS:     {"cfnetwork"},
	OSMacOS:   {"cfnetwork"},
	OSWindows: {"winhttp"},
}

// Automated reports whether the user agent ua is a program's rather than a
// person's client: an HTTP library or a headless browser, as ParseFamily
// classifies them — unless it is the native HTTP stack of the platform on
// (nativeStacks; with on unknown, the stack of any platform), which a
// person's app may use for its background requests. A self-declared
// crawler is not counted: link previewers fetch the links people share,
// tokens in them included. It does not allocate (it runs on every use of
// a token bound to a person's client).
func Automated(ua string, on OS) bool {
	ua = strings.TrimSpace(ua)
	if len(ua) > maxUA {
		ua = ua[:maxUA]
	}
	first := ua
	if i := strings.IndexAny(first, " (/"); i >= 0 {
		first = first[:i]
	}
	if strings.EqualFold(first, "mozilla") || strings.EqualFold(first, "opera") {
		return containsFold(ua, "headlesschrome") || containsFold(ua, "phantomjs")
	}
	if first == "" || !hasProductFold(ua, libraries) {
		return false
	}
	for os, stacks := range nativeStacks {
		if (on == OSUnknown || OS(os) == on) && hasProductFold(ua, stacks) {
			return false
		}
	}
	return true
}

// hasProductFold reports whether ua starts, case-insensitively, with one
// of the product names, followed by "/", " " or nothing (isLibrary's rule).
func hasProductFold(ua string, names []string) bool {
	for _, n := range names {
		if len(ua) >= len(n) && strings.EqualFold(ua[:len(n)], n) && (len(ua) == len(n) || ua[len(n)] == '/' || ua[len(n)] == ' ') {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains the lower-case ASCII needle,
// ignoring ASCII case.
func containsFold(s, needle string) bool {
	for i := 0; i+len(needle) <= len(s); i++ {
		j := 0
		for ; j < len(needle); j++ {
			b := s[i+j]
			if 'A' <= b && b <= 'Z' {
				b += 'a' - 'A'
			}
			if b != needle[j] {
				break
			}
		}
		if j == len(needle) {
			return true
		}
	}
	return false
}
