package sim

import (
	"errors"
	"fmt"
	"time"
)

// MaxCustomers is the largest supported Options.Customers.
const MaxCustomers = 34_000_000

// Options configure one simulated run.
type Options struct {
	Seed      uint64
	Days      int       // 0 → 14; every event lies in [Start, Start+Days)
	Customers int       // 0 → 200_000; at most MaxCustomers
	Scenarios []string  // nil → all; empty non-nil → none; names from ScenarioNames()
	Start     time.Time // zero → 2025-06-02T00:00:00Z (a Monday), UTC
	// Variants draws each scenario's parameters from the seed — rates,
	// hours, victim counts, token lifetimes and the attacker's network
	// (residential, mobile, hosting, a domestic proxy) — within what the
	// scenario means; the drawn variant is named in truth.Scenario.Variant.
	// False keeps every scenario in its canonical form (the one described
	// in the package documentation).
	Variants bool
}

var scenarioNames = []string{
	"ghost-key",
	"departed-insider-export",
	"credential-stuffing",
	"cs-agent-snooping",
	"service-account-abuse",
	"partner-enumeration",
	"token-hijack",
	"cloud-credential-theft",
	"privileged-takeover",
	"slow-insider-export",
}

// ScenarioNames returns the names of the breach scenarios, in the order
// their ground truth is reported.
func ScenarioNames() []string { return append([]string(nil), scenarioNames...) }

// Validate reports what is wrong with o, naming the option.
func (o Options) Validate() error {
	var errs []error
	if o.Days < 0 {
		errs = append(errs, fmt.Errorf("sim: Days: %d is negative", o.Days))
	}
	if o.Days > 3660 {
		errs = append(errs, fmt.Errorf("sim: Days: %d is more than 3660", o.Days))
	}
	if o.Customers < 0 {
		errs = append(errs, fmt.Errorf("sim: Customers: %d is negative", o.Customers))
	}
	if o.Customers > MaxCustomers {
		errs = append(errs, fmt.Errorf("sim: Customers: %d is more than %d", o.Customers, MaxCustomers))
	}
	seen := map[string]bool{}
	for _, s := range o.Scenarios {
		known := false
		for _, n := range scenarioNames {
			known = known || n == s
		}
		if !known {
			errs = append(errs, fmt.Errorf("sim: Scenarios: unknown scenario %q (known: %v)", s, scenarioNames))
		} else if seen[s] {
			errs = append(errs, fmt.Errorf("sim: Scenarios: %q given twice", s))
		}
		seen[s] = true
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults() Options {
	if o.Days == 0 {
		o.Days = 14
	}
	if o.Customers == 0 {
		o.Customers = 200_000
	}
	if o.Scenarios == nil {
		o.Scenarios = ScenarioNames()
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart()
	}
	o.Start = o.Start.UTC()
	return o
}

func (o Options) enabled(name string) bool {
	for _, s := range o.Scenarios {
		if s == name {
			return true
		}
	}
	return false
}

// DefaultStart is the simulated start when Options.Start is zero: Monday
// 2025-06-02 00:00 UTC.
func DefaultStart() time.Time { return time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC) }
