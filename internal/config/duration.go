package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Duration is a time.Duration written in config files as a string:
// Go's units ("300ms", "5m", "1h30m", "0s") plus a day unit "d" of exactly
// 24 hours ("7d", "1.5d", "1d12h"). A bare number is rejected: it needs a
// unit, even zero ("0s").
//
// It encodes back to the same notation (String), as YAML, JSON or text.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

const day = 24 * time.Hour

// String formats d with whole days first, then Go's notation without
// trailing zero units: 0s, 90s → 1m30s, 36h → 1d12h, 168h → 7d.
// ParseDuration(d.String()) == d for every d.
func (d Duration) String() string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	mag := uint64(d)
	if d < 0 {
		b.WriteByte('-')
		mag = -mag // two's complement: correct for math.MinInt64 too
	}
	if days := mag / uint64(day); days > 0 {
		fmt.Fprintf(&b, "%dd", days)
	}
	if rem := time.Duration(mag % uint64(day)); rem > 0 {
		s := rem.String()
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		b.WriteString(s)
	}
	return b.String()
}

// errNoUnit is the complaint about a number written without a unit.
func errNoUnit(num string) error {
	if strings.Trim(num, "0.") == "" {
		return fmt.Errorf("duration %s needs a unit: write \"0s\"", num)
	}
	return fmt.Errorf("duration %s needs a unit, e.g. \"%[1]ss\", \"%[1]sm\", \"%[1]sh\" or \"%[1]sd\"", num)
}

// ParseDuration parses the notation described at Duration.
func ParseDuration(s string) (Duration, error) {
	d, err := parseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", s, err)
	}
	return d, nil
}

func parseDuration(s string) (Duration, error) {
	if s == "" {
		return 0, errors.New("empty duration")
	}
	body := s
	neg := false
	if body[0] == '-' || body[0] == '+' {
		neg = body[0] == '-'
		body = body[1:]
	}
	if body == "" {
		return 0, errors.New("no number after the sign")
	}
	if strings.Trim(body, "0123456789.") == "" {
		return 0, errNoUnit(body)
	}
	// Split into number+unit components. Days are converted here, everything
	// else is left to time.ParseDuration.
	var (
		rest    strings.Builder
		days    uint64 // nanoseconds contributed by "d" components
		hasDays bool
	)
	for i := 0; i < len(body); {
		j := i
		for j < len(body) && (body[j] >= '0' && body[j] <= '9' || body[j] == '.') {
			j++
		}
		num := body[i:j]
		if strings.Trim(num, ".") == "" || strings.Count(num, ".") > 1 {
			return 0, fmt.Errorf("expected a number at %q", body[i:])
		}
		k := j
		for k < len(body) && !(body[k] >= '0' && body[k] <= '9' || body[k] == '.') {
			k++
		}
		unit := body[j:k]
		switch unit {
		case "":
			return 0, errNoUnit(num)
		case "d":
			// N days = (N hours) × 24, exact to within 24ns for fractions.
			h, err := time.ParseDuration(num + "h")
			if err != nil || uint64(h) > (math.MaxInt64-days)/24 {
				return 0, errors.New("out of range")
			}
			days += uint64(h) * 24
			hasDays = true
		case "ns", "us", "µs", "μs", "ms", "s", "m", "h":
			rest.WriteString(body[i:k])
		default:
			return 0, fmt.Errorf("unknown unit %q (want ns, us, ms, s, m, h or d)", unit)
		}
		i = k
	}
	if !hasDays {
		// Leave it all to Go, sign included (handles math.MinInt64).
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, errors.New("out of range") // numbers and units are checked above
		}
		return Duration(d), nil
	}
	total := days
	if rest.Len() > 0 {
		r, err := time.ParseDuration(rest.String())
		if err != nil {
			return 0, errors.New("out of range")
		}
		total += uint64(r) // both < 2^63: no uint64 overflow
	}
	limit := uint64(math.MaxInt64)
	if neg {
		limit++
	}
	if total > limit {
		return 0, errors.New("out of range")
	}
	if neg {
		return Duration(-total), nil
	}
	return Duration(total), nil
}

// UnmarshalYAML accepts a YAML string in Duration notation. Numbers are
// rejected with a request for a unit. (go-yaml and yaml.v3 style.)
func (d *Duration) UnmarshalYAML(unmarshal func(any) error) error {
	var v any
	if err := unmarshal(&v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		return nil // null keeps the current value, as for other fields
	case string:
		p, err := ParseDuration(v)
		if err != nil {
			return err
		}
		*d = p
		return nil
	case int, int64, uint64, float64:
		return errNoUnit(fmt.Sprint(v))
	default:
		return fmt.Errorf("want a duration string like \"5m\" or \"7d\", got %T", v)
	}
}

// MarshalYAML encodes d as its String form.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalText parses Duration notation (for flags, JSON, environment).
func (d *Duration) UnmarshalText(b []byte) error {
	p, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

// MarshalText encodes d as its String form.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
