package stuffing

import (
	"testing"
	"time"
)

// deviceOf keeps a device's kind across browser and app updates and
// tells other phones, computers and programs apart.
func TestDeviceOf(t *testing.T) {
	for _, tc := range []struct{ ua, want string }{
		{"", ""},
		{"   ", ""},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "mozilla on Windows"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0", "mozilla on Windows"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "mozilla on iOS"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", "mozilla on macOS"},
		{"Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Mobile Safari/537.36", "mozilla on Android"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36", "mozilla on ChromeOS"},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "mozilla on Linux"},
		{"ExampleShop/8.4.1 (Android 14; SM-S918N) okhttp/4.12.0", "exampleshop on Android"},
		{"ExampleShop/8.1.0 (Android 12; SM-G991N) okhttp/4.10.0", "exampleshop on Android"}, // an app update: same kind
		{"ExampleShop/8.4.1 (iPhone; iOS 17.4; Scale/3.00)", "exampleshop on iOS"},
		{"python-requests/2.32.3", "python-requests on other"},
		{"curl/8.5.0", "curl on other"},
	} {
		if got := deviceOf(tc.ua); got != tc.want {
			t.Errorf("deviceOf(%q) = %q, want %q", tc.ua, got, tc.want)
		}
	}
}

// The history filter forgets what is older than two periods, never what
// is younger than one.
func TestHistoryGenerations(t *testing.T) {
	var h history
	const bits, period = 1 << 12, 10 * time.Second
	at := func(n int) time.Time { return time.Unix(int64(n), 0) }
	h.add(1, at(0), bits, period)
	h.add(2, at(5), bits, period)
	if !h.has(1) || !h.has(2) || h.has(3) {
		t.Fatalf("after adding 1 and 2: has(1)=%v has(2)=%v has(3)=%v", h.has(1), h.has(2), h.has(3))
	}
	h.add(3, at(12), bits, period) // a new generation: 1 and 2 are the older one
	if !h.has(1) || !h.has(3) {
		t.Fatalf("one period on: has(1)=%v has(3)=%v, want both", h.has(1), h.has(3))
	}
	h.add(4, at(23), bits, period) // another: 1 and 2 are gone
	if h.has(1) || h.has(2) || !h.has(3) || !h.has(4) {
		t.Fatalf("two periods on: has(1)=%v has(2)=%v has(3)=%v has(4)=%v", h.has(1), h.has(2), h.has(3), h.has(4))
	}
	h.add(5, at(60), bits, period) // idle for more than two periods: only 5
	if h.has(3) || h.has(4) || !h.has(5) {
		t.Fatalf("after an idle stretch: has(3)=%v has(4)=%v has(5)=%v", h.has(3), h.has(4), h.has(5))
	}
}
