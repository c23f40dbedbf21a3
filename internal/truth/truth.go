// Package truth is the ground-truth format shared by the breach simulator
// (which writes it) and the scorecard (which reads it): which events were
// malicious, which entities were the attacker's, and which benign traffic
// was deliberately hard. It is also how a user scores traffic the
// simulator did not make (`haechi eval --events FILE --truth FILE`).
//
// Nothing on the detection path may import this package or the simulator:
// detectors see only events.
package truth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// Truth is the ground truth of one simulated (or hand-labelled) run.
type Truth struct {
	Seed       uint64     `json:"seed"`
	Scenarios  []Scenario `json:"scenarios"`
	HardBenign []Benign   `json:"hard_benign"`
}

// Scenario is one injected attack.
type Scenario struct {
	Name string `json:"name"`
	// AttackerEntities are the entities an alert may name to count as
	// detecting this scenario (the forged key, the attacker's addresses,
	// the insider's principal, …).
	AttackerEntities []event.EntityKey `json:"attacker_entities"`
	// MaliciousEventIDs are the event.id of every malicious event.
	MaliciousEventIDs []string  `json:"malicious_event_ids"`
	FirstMalicious    time.Time `json:"first_malicious"`
	LastMalicious     time.Time `json:"last_malicious"`
	// RecordsTouched is the number of distinct records the malicious
	// events touched.
	RecordsTouched int `json:"records_touched"`
	// Variant describes the drawn variant of the scenario (the simulator's
	// Options.Variants: "network=domestic-proxy rate=0.5/s …"); empty for
	// the canonical form and for hand-labelled truth.
	Variant string `json:"variant,omitempty"`
}

// Benign is hard but benign traffic: alerts about it are false positives,
// counted apart from ordinary ones.
type Benign struct {
	Name     string            `json:"name"`
	Entities []event.EntityKey `json:"entities"`
	EventIDs []string          `json:"event_ids"`
}

// Validate reports what makes t unusable for scoring.
func (t *Truth) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, s := range t.Scenarios {
		if s.Name == "" {
			errs = append(errs, fmt.Errorf("scenarios[%d]: empty name", i))
		}
		if seen[s.Name] {
			errs = append(errs, fmt.Errorf("scenarios[%d]: duplicate name %q", i, s.Name))
		}
		seen[s.Name] = true
		if len(s.MaliciousEventIDs) == 0 {
			errs = append(errs, fmt.Errorf("scenarios[%d] (%s): no malicious_event_ids", i, s.Name))
		}
		if !s.LastMalicious.IsZero() && s.LastMalicious.Before(s.FirstMalicious) {
			errs = append(errs, fmt.Errorf("scenarios[%d] (%s): last_malicious before first_malicious", i, s.Name))
		}
	}
	for i, b := range t.HardBenign {
		if b.Name == "" {
			errs = append(errs, fmt.Errorf("hard_benign[%d]: empty name", i))
		}
	}
	return errors.Join(errs...)
}

// Write encodes t as indented JSON.
func (t *Truth) Write(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// Read decodes and validates a truth document; unknown fields are errors.
func Read(r io.Reader) (*Truth, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	var t Truth
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("truth: %w", err)
	}
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("truth: %w", err)
	}
	return &t, nil
}

// Load reads a truth file.
func Load(path string) (*Truth, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("truth: %w", err)
	}
	defer f.Close()
	t, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}
