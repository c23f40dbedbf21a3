package incident

import (
	"github.com/haechi-sec/haechi/internal/event"
)

// Derivations remembers, across calls of GroupWith, what Group derived
// from each alert — its links, campaign keys and graph edges — so that
// grouping overlapping sets of alerts again (an incident keeper
// regrouping an incident's alerts on every batch) derives only the
// alerts that changed. The incidents are Group's: a remembered derivation
// is used only for the same alert, read against the same facts and the
// same accused entities:
//
//   - the same alert: the same ID, subject and detector, and the same
//     Findings slice (the same array and length). A caller must not
//     change the findings of an alert in place after grouping it; an
//     alert read again (a new slice) is derived again;
//   - the same facts: a derivation is remembered only when Facts.Event
//     knew every reference the alert cites, and the caller promises that
//     a reference it once knew it answers the same ever after (stored
//     citations: the first of a reference wins); facts nil and not nil
//     are told apart;
//   - the same accused entities: the entities the derivation asked about
//     (the keys, tokens and principals of the cited events) are accused
//     or not as they were.
//
// A Derivations is used by one goroutine at a time. Over returns a layer
// whose new derivations stay apart until Merge, so a caller may drop
// what a rolled-back transaction derived.
type Derivations struct {
	base *Derivations
	m    map[string]*derivation
}

// NewDerivations returns an empty Derivations.
func NewDerivations() *Derivations { return &Derivations{m: map[string]*derivation{}} }

// Over returns a Derivations that answers from d too and keeps what it
// derives to itself (Merge).
func (d *Derivations) Over() *Derivations {
	return &Derivations{base: d, m: map[string]*derivation{}}
}

// Len returns how many alerts' derivations d holds itself.
func (d *Derivations) Len() int { return len(d.m) }

// Merge adds what layer (an Over of d) derived to d, starting d over from
// layer's alone when d would hold more than limit.
func (d *Derivations) Merge(layer *Derivations, limit int) {
	if len(d.m)+len(layer.m) > limit {
		d.m = make(map[string]*derivation, len(layer.m))
	}
	for id, dv := range layer.m {
		d.m[id] = dv
	}
}

// derivation is what derive made of one alert, and what it read.
type derivation struct {
	// The alert it was derived from (derivations.go's "the same alert").
	entity   event.EntityKey
	detector string
	findings []event.Finding // the slice itself: its array stays alive
	hasFacts bool
	unknown  bool // Facts.Event did not know a reference
	// asked: the entities derive asked accused about, and the answers.
	asked map[event.EntityKey]bool

	kind          string
	links         []link
	asns          []uint32
	uas, victims  []string
	tokenCampaign []string
	edges         []Edge
}

func newDerivation(a *event.Alert, hasFacts bool) *derivation {
	return &derivation{entity: a.Entity, detector: a.Detector, findings: a.Findings, hasFacts: hasFacts}
}

// read records that derive asked whether e is accused, and the answer.
func (dv *derivation) read(e event.EntityKey, v bool) {
	if dv.asked == nil {
		dv.asked = map[event.EntityKey]bool{}
	}
	dv.asked[e] = v
}

// keep remembers the derivation of it (derive filled dv from it) unless
// facts did not know a reference it cites.
func (d *Derivations) keep(it *item, dv *derivation) {
	if dv.unknown {
		return
	}
	dv.kind, dv.links, dv.asns, dv.uas, dv.victims, dv.tokenCampaign, dv.edges =
		it.kind, it.links, it.asns, it.uas, it.victims, it.tokenCampaign, it.edges
	d.m[it.a.ID] = dv
}

// lookup returns the remembered derivation of a when it holds (the
// type's doc), else nil.
func (d *Derivations) lookup(a *event.Alert, hasFacts bool, accused map[event.EntityKey]bool) *derivation {
	var dv *derivation
	for l := d; l != nil && dv == nil; l = l.base {
		dv = l.m[a.ID]
	}
	if dv == nil || dv.hasFacts != hasFacts || dv.entity != a.Entity || dv.detector != a.Detector ||
		!sameSlice(dv.findings, a.Findings) {
		return nil
	}
	for e, v := range dv.asked {
		if accused[e] != v {
			return nil
		}
	}
	return dv
}

// sameSlice reports whether x and y are the same slice: the same length
// and, when not empty, the same first element.
func sameSlice(x, y []event.Finding) bool {
	if len(x) != len(y) {
		return false
	}
	return len(x) == 0 || &x[0] == &y[0]
}

// apply gives it the derivation. The lists are shared: nothing after
// derive changes them.
func (dv *derivation) apply(it *item) {
	it.kind, it.links, it.asns, it.uas, it.victims, it.tokenCampaign, it.edges =
		dv.kind, dv.links, dv.asns, dv.uas, dv.victims, dv.tokenCampaign, dv.edges
}
