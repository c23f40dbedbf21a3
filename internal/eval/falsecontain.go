package eval

import (
	"cmp"
	"slices"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/truth"
)

// FalseContainments counts the false containments with the response
// scored: a containment whose target is no scenario's attacker entity and
// which refused none of an attack's requests, but refused benign ones or
// targets a hard-benign entity. It is hard-benign when its target is a
// hard-benign entity or a refused request belongs to a hard-benign entry
// (its event id, or its principal or source address is one of the
// entry's entities), else ordinary (a carrier's customers behind a
// blocked address, say). A containment that stopped an attack and also
// refused its target's benign requests (a compromised service account's
// own jobs) is not false; Collateral counts those requests. Nor is one
// whose target is a token that carried an attack's request (the
// attacker's instrument: an insider's own session that exported, revoked
// after the export and refusing its later routine requests).
type FalseContainments struct {
	// Containments that refused at least one benign request.
	Containments int `json:"containments"`
	HardBenign   int `json:"hard_benign"`
	Ordinary     int `json:"ordinary"`
	// RefusedEvents counts the benign requests the false containments
	// refused.
	RefusedEvents int `json:"refused_events"`
	// Collateral counts the benign requests refused by containments that
	// also stopped an attack.
	Collateral int `json:"collateral"`
	// ByTarget lists the containments, by refused requests (most first),
	// then kind and target.
	ByTarget []FalseContainment `json:"by_target"`
}

// FalseContainment is one containment that refused benign requests.
type FalseContainment struct {
	Kind    string          `json:"kind"`
	Target  event.EntityKey `json:"target"`
	Refused int             `json:"refused"`
	// HardBenign names the hard-benign entries among the refused requests.
	HardBenign []string `json:"hard_benign,omitempty"`
}

// falseContainer notes the benign requests the gate refuses.
type falseContainer struct {
	t    *truth.Truth
	at   *attributor
	cs   []Containment
	by   map[string]*FalseContainment
	hit  map[string]bool // containments that refused an attack's request
	seen map[string]bool // refused benign event ids, counted once
	// instr holds the tokens that carried an attack's request.
	instr map[event.EntityKey]bool
}

func newFalseContainer(t *truth.Truth, cs []Containment) *falseContainer {
	if t == nil {
		t = &truth.Truth{}
	}
	return &falseContainer{t: t, at: newAttributor(t), cs: cs, by: map[string]*FalseContainment{},
		hit: map[string]bool{}, seen: map[string]bool{}, instr: map[event.EntityKey]bool{}}
}

// Observe notes the token of an attack's request, refused or not (before
// Apply rewrites it).
func (f *falseContainer) Observe(ev *event.Event) {
	if ev.ID != "" && ev.Token.ID != "" && len(f.at.malByID[ev.ID]) > 0 {
		f.instr[event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID}] = true
	}
}

func containmentKey(c Containment) string {
	return c.Kind + "\x00" + string(c.Target.Kind) + "\x00" + c.Target.ID
}

// Refused notes that containment c refused ev (before Apply rewrites it).
func (f *falseContainer) Refused(ev *event.Event, c Containment) {
	k := containmentKey(c)
	if ev.ID != "" {
		if len(f.at.malByID[ev.ID]) > 0 {
			f.hit[k] = true
			return
		}
		if f.seen[ev.ID] {
			return
		}
		f.seen[ev.ID] = true
	}
	fc := f.by[k]
	if fc == nil {
		fc = &FalseContainment{Kind: c.Kind, Target: c.Target}
		f.by[k] = fc
	}
	fc.Refused++
	var hb []int
	if ev.ID != "" {
		hb = append(hb, f.at.benignByID[ev.ID]...)
	}
	if ev.User.ID != "" {
		hb = append(hb, f.at.benignEnt[event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}]...)
	}
	if ip := ev.Source.IP.Unmap(); ip.IsValid() {
		hb = append(hb, f.at.benignEnt[event.EntityKey{Kind: event.EntitySource, ID: ip.String()}]...)
	}
	for _, i := range hb {
		if n := f.t.HardBenign[i].Name; !slices.Contains(fc.HardBenign, n) {
			fc.HardBenign = append(fc.HardBenign, n)
		}
	}
}

// score returns what was noted.
func (f *falseContainer) score() *FalseContainments {
	out := &FalseContainments{ByTarget: []FalseContainment{}}
	for _, c := range f.cs {
		k := containmentKey(c)
		if f.by[k] != nil {
			continue
		}
		if hb := f.at.benignEnt[c.Target]; len(hb) > 0 {
			fc := &FalseContainment{Kind: c.Kind, Target: c.Target}
			for _, i := range hb {
				if n := f.t.HardBenign[i].Name; !slices.Contains(fc.HardBenign, n) {
					fc.HardBenign = append(fc.HardBenign, n)
				}
			}
			f.by[k] = fc
		}
	}
	for k, fc := range f.by {
		if f.hit[k] || len(f.at.attacker[fc.Target]) > 0 || f.instr[fc.Target] {
			out.Collateral += fc.Refused
			continue
		}
		for _, i := range f.at.benignEnt[fc.Target] {
			if n := f.t.HardBenign[i].Name; !slices.Contains(fc.HardBenign, n) {
				fc.HardBenign = append(fc.HardBenign, n)
			}
		}
		slices.Sort(fc.HardBenign)
		out.ByTarget = append(out.ByTarget, *fc)
		out.Containments++
		out.RefusedEvents += fc.Refused
		if len(fc.HardBenign) > 0 {
			out.HardBenign++
		} else {
			out.Ordinary++
		}
	}
	slices.SortFunc(out.ByTarget, func(x, y FalseContainment) int {
		if c := cmp.Compare(y.Refused, x.Refused); c != 0 {
			return c
		}
		if c := cmp.Compare(x.Kind, y.Kind); c != 0 {
			return c
		}
		return cmp.Compare(x.Target.ID, y.Target.ID)
	})
	return out
}
