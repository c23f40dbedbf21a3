package alert

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// snapshotVersion versions the stage's checkpoint encoding.
const snapshotVersion = 1

type stageState struct {
	V         int         `json:"v"`
	Open      []openState `json:"open"`
	Risk      []riskState `json:"risk"`
	WM        time.Time   `json:"wm"`
	NextClose time.Time   `json:"next_close"`
	NextSweep time.Time   `json:"next_sweep"`
	Counts    [3]int      `json:"counts"` // raised, closed, findings
	// Held are the findings waiting for the watermark (Options.Ordered).
	Held []heldState `json:"held,omitempty"`
	// Early are the alerts raised ahead of ordered processing and not yet
	// raised by it, by id (Options.Ordered): after a restore, ordered
	// processing updates them instead of raising them again.
	Early []event.Alert `json:"early,omitempty"`
}

// heldState is a held finding with Immediate, which a finding's JSON form
// leaves out.
type heldState struct {
	event.Finding
	Immediate bool `json:"immediate,omitempty"`
}

type openState struct {
	Alert event.Alert `json:"alert"`
	Expl  string      `json:"expl"`
	// Immediate lists the indices of Alert.Findings that are Immediate
	// (a withdrawal asks whether an immediate finding remains).
	Immediate []int `json:"immediate,omitempty"`
}

type riskState struct {
	Entity event.EntityKey `json:"entity"`
	Dets   []detState      `json:"dets"`
	Kept   []event.Finding `json:"kept,omitempty"`
	// PrivilegedAt: the latest privileged finding's time (entityRisk.
	// privAt); zero: none.
	PrivilegedAt time.Time `json:"privileged_at,omitzero"`
	// Privileged is what snapshots written before PrivilegedAt kept
	// (read, never written): the risk was weighed.
	Privileged bool `json:"privileged,omitempty"`
}

type detState struct {
	Detector string    `json:"detector"`
	Value    float64   `json:"value"`
	Cap      float64   `json:"cap"`
	At       time.Time `json:"at"`
}

// Snapshot encodes the stage's state for a checkpoint: open alerts and
// every entity's risk with the findings waiting in it. Recently closed
// alerts are not kept: after a restart, a finding in the window of an
// alert closed before it opens a new alert. Call it on the stage's
// goroutine.
func (s *Stage) Snapshot() ([]byte, error) {
	st := stageState{V: snapshotVersion, WM: s.wm, NextClose: s.nextClose, NextSweep: s.nextSweep,
		Counts: [3]int{s.raised, s.nClosed, s.nFinding}}
	for _, f := range s.held {
		st.Held = append(st.Held, heldState{f, f.Immediate})
	}
	ids := make([]string, 0, len(s.early))
	for id := range s.early {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		st.Early = append(st.Early, *s.early[id])
	}
	keys := make([]event.EntityKey, 0, len(s.open))
	for k := range s.open {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		o := s.open[k]
		os := openState{Alert: o.a, Expl: o.expl}
		for i := range o.a.Findings {
			if o.a.Findings[i].Immediate {
				os.Immediate = append(os.Immediate, i)
			}
		}
		st.Open = append(st.Open, os)
	}
	keys = keys[:0]
	for k := range s.risk {
		keys = append(keys, k)
	}
	sortKeys(keys)
	for _, k := range keys {
		r := s.risk[k]
		rs := riskState{Entity: k, Kept: r.kept, PrivilegedAt: r.privAt}
		for _, d := range r.dets {
			rs.Dets = append(rs.Dets, detState{Detector: d.detector, Value: d.value, Cap: d.cap, At: d.at})
		}
		st.Risk = append(st.Risk, rs)
	}
	return json.Marshal(st)
}

// Restore replaces the stage's state with a Snapshot. On error the stage
// is left as it was.
func (s *Stage) Restore(b []byte) error {
	var st stageState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("alert: snapshot: %w", err)
	}
	if st.V != snapshotVersion {
		return fmt.Errorf("alert: snapshot version %d, want %d", st.V, snapshotVersion)
	}
	opened := make(map[event.EntityKey]*open, len(st.Open))
	for _, o := range st.Open {
		if o.Alert.ID == "" {
			return fmt.Errorf("alert: snapshot: an open alert without an id")
		}
		for _, i := range o.Immediate {
			if i < 0 || i >= len(o.Alert.Findings) {
				return fmt.Errorf("alert: snapshot: alert %s: immediate finding %d of %d", o.Alert.ID, i, len(o.Alert.Findings))
			}
			o.Alert.Findings[i].Immediate = true
		}
		opened[o.Alert.Entity] = &open{a: o.Alert, expl: o.Expl}
	}
	risk := make(map[event.EntityKey]*entityRisk, len(st.Risk))
	for _, r := range st.Risk {
		er := &entityRisk{kept: r.Kept, privAt: r.PrivilegedAt}
		if r.Privileged && er.privAt.IsZero() {
			// An older checkpoint kept only the flag: weigh from the
			// latest privileged finding it kept.
			for _, f := range r.Kept {
				if f.Privileged && f.Time.After(er.privAt) {
					er.privAt = f.Time
				}
			}
		}
		for _, d := range r.Dets {
			er.dets = append(er.dets, detRisk{detector: d.Detector, value: d.Value, cap: d.Cap, at: d.At})
		}
		risk[r.Entity] = er
	}
	s.open, s.risk = opened, risk
	s.closed, s.closedQ, s.closedBase, s.dirty = map[event.EntityKey]*open{}, nil, 0, nil
	s.wm, s.nextClose, s.nextSweep = st.WM, st.NextClose, st.NextSweep
	s.held = make([]event.Finding, 0, len(st.Held))
	s.heldByOK = false
	for _, h := range st.Held {
		h.Finding.Immediate = h.Immediate
		s.held = append(s.held, h.Finding)
	}
	s.early = make(map[string]*event.Alert, len(st.Early))
	for i := range st.Early {
		s.early[st.Early[i].ID] = &st.Early[i]
	}
	s.raised, s.nClosed, s.nFinding = st.Counts[0], st.Counts[1], st.Counts[2]
	s.openG.Set(float64(len(s.open)))
	s.tracked.Set(float64(len(s.risk)))
	return nil
}

func sortKeys(ks []event.EntityKey) {
	slices.SortFunc(ks, func(a, b event.EntityKey) int {
		if c := strings.Compare(string(a.Kind), string(b.Kind)); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
}
