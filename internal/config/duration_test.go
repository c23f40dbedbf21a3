package config

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

func TestParseDuration(t *testing.T) {
	const d = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"0s", 0},
		{"5m", 5 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"300ms", 300 * time.Millisecond},
		{"1.5s", 1500 * time.Millisecond},
		{"2us", 2 * time.Microsecond},
		{"2µs", 2 * time.Microsecond},
		{"7d", 7 * d},
		{"1d12h", 36 * time.Hour},
		{"1.5d", 36 * time.Hour},
		{".5d", 12 * time.Hour},
		{"0.1d", 8640 * time.Second},
		{"0d", 0},
		{"12h1d", 36 * time.Hour},
		{"1d1d", 2 * d},
		{"-1d", -d},
		{"+2d", 2 * d},
		{"-1d12h30m", -(36*time.Hour + 30*time.Minute)},
		{"106751d23h47m16.854775807s", math.MaxInt64},
		{"-106751d23h47m16.854775808s", math.MinInt64},
		{"-2562047h47m16.854775808s", math.MinInt64},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tc.in, err)
			continue
		}
		if got.D() != tc.want {
			t.Errorf("ParseDuration(%q) = %v, want %v", tc.in, got.D(), tc.want)
		}
	}
}

func TestParseDurationRejects(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "empty duration"},
		{"5", `duration 5 needs a unit, e.g. "5s", "5m", "5h" or "5d"`},
		{"0", "needs a unit"},
		{"-0", "needs a unit"},
		{"1.5", "needs a unit"},
		{"1d5", "duration 5 needs a unit"},
		{"-", "no number after the sign"},
		{"d", "expected a number"},
		{"1..5d", "expected a number"},
		{"5 m", `unknown unit " m"`},
		{"2w", `unknown unit "w"`},
		{"1y", `unknown unit "y"`},
		{"1D", `unknown unit "D"`},
		{"1d-5h", `unknown unit "d-"`},
		{"106752d", "out of range"},
		{"106751d24h", "out of range"},
		{"106751d23h47m16.854775808s", "out of range"},
		{"9999999999999999999999d", "out of range"},
		{"3000000h", "out of range"},
		{" 5m", "expected a number"},
	} {
		_, err := ParseDuration(tc.in)
		if err == nil {
			t.Errorf("ParseDuration(%q) succeeded", tc.in)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDuration(%q) = %q, want it to contain %q", tc.in, err, tc.want)
		}
	}
}

func TestDurationString(t *testing.T) {
	const d = 24 * time.Hour
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "0s"},
		{time.Nanosecond, "1ns"},
		{1500 * time.Millisecond, "1.5s"},
		{90 * time.Second, "1m30s"},
		{5 * time.Minute, "5m"},
		{time.Hour, "1h"},
		{time.Hour + 5*time.Second, "1h0m5s"},
		{7 * d, "7d"},
		{36 * time.Hour, "1d12h"},
		{d + time.Second, "1d1s"},
		{-36 * time.Hour, "-1d12h"},
		{-time.Minute, "-1m"},
		{math.MaxInt64, "106751d23h47m16.854775807s"},
		{math.MinInt64, "-106751d23h47m16.854775808s"},
	} {
		if got := Duration(tc.in).String(); got != tc.want {
			t.Errorf("Duration(%d).String() = %q, want %q", int64(tc.in), got, tc.want)
		}
	}
}

func roundTrip(t *testing.T, d Duration) {
	t.Helper()
	s := d.String()
	back, err := ParseDuration(s)
	if err != nil || back != d {
		t.Fatalf("ParseDuration(%q) = %d, %v; want %d", s, int64(back), err, int64(d))
	}
}

func TestDurationRoundTrip(t *testing.T) {
	for _, d := range []Duration{0, 1, -1, math.MaxInt64, math.MinInt64, math.MinInt64 + 1,
		Duration(24 * time.Hour), Duration(-24 * time.Hour), Duration(24*time.Hour - 1)} {
		roundTrip(t, d)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		// Spread over magnitudes: random bits shifted down by a random amount.
		v := int64(r.Uint64()) >> r.IntN(64)
		roundTrip(t, Duration(v))
	}
}

func TestDurationYAMLAndJSON(t *testing.T) {
	type doc struct {
		D Duration `yaml:"d" json:"d"`
	}
	in := doc{D: Duration(36*time.Hour + time.Minute)}
	y, err := yaml.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(y)); got != "d: 1d12h1m" {
		t.Errorf("yaml.Marshal = %q", got)
	}
	var out doc
	if err := yaml.Unmarshal(y, &out); err != nil || out != in {
		t.Errorf("yaml round trip: %+v, %v", out, err)
	}
	j, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(j) != `{"d":"1d12h1m"}` {
		t.Errorf("json.Marshal = %s", j)
	}
	out = doc{}
	if err := json.Unmarshal(j, &out); err != nil || out != in {
		t.Errorf("json round trip: %+v, %v", out, err)
	}

	// The type's own unmarshaler (used outside Parse) rejects numbers too.
	for _, src := range []string{"d: 30\n", "d: 1.5\n", "d: [1]\n"} {
		if err := yaml.Unmarshal([]byte(src), &out); err == nil {
			t.Errorf("yaml.Unmarshal(%q) succeeded", src)
		}
	}
	out = doc{D: 7}
	if err := yaml.Unmarshal([]byte("d:\n"), &out); err != nil || out.D != 7 {
		t.Errorf("null: %+v, %v", out, err)
	}
}
