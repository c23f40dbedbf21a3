package track

import (
	"context"
	"slices"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/store"
)

// Bounds of what a Keeper remembers (package doc, "Memory"): past one, that
// part is forgotten and read again as batches need it. What it remembers
// is history (stored alerts, their citations), not live state, so the
// bounds are small: ≈ 26 MB at the sizes simulated months at 40,000
// customers show (an alert with its findings ≈ 16 KB: 819 alerts held
// ≈ 13 MB after 30 days; a citation ≈ 200 bytes; an incident with its
// detail a few KB). The earlier 16,384 alerts, 262,144 citations and
// 8,192 incidents allowed ≈ 290 MB, more than half of serve's 512 MB
// budget, and a 60-day stream's memo was still growing toward them.
// Starting over costs one read of the neighbourhoods the next batches
// touch.
const (
	memoAlerts    = 1024  // stored alerts with their findings
	memoCitations = 32768 // citations
	memoIncidents = 1024  // stored incidents with their detail
)

// memo is what a Keeper remembers across its transactions: stored alerts
// (with findings), citations and incidents exactly as the store read them
// back, valid in generation gen — the one the Keeper's own last committed
// transaction made.
type memo struct {
	gen       store.IncidentGeneration
	alerts    map[string]event.Alert
	citations map[string]event.Citation
	incidents map[string]store.Incident
	// keys are the join keys stored for an alert (as SetAlertsKeys last
	// set them); sources the principals the citations show per address
	// (SourcePrincipals; 0 for none).
	keys    map[string]store.AlertKeys
	sources map[string]int
	// absent are references read and found to have no stored citation
	// (an event cited as evidence is described only by the finding its
	// processing emitted; the others stay unknown): not read again until
	// a citation of theirs is stored.
	absent map[string]bool
	// derived is what grouping derived from the alerts
	// (incident.Derivations).
	derived *incident.Derivations
}

// view is one transaction's access to what the keeper reads: the memo when
// it is still valid (base; nil when not), else the store, and what this
// transaction read or made stale. A view becomes the memo once the next
// transaction's generation shows it committed (Keeper.begin).
//
// It answers Alerts, Citations and Incidents as the store would (the
// values the store read, in a transaction that saw the same rows), and
// marks what PutIncident, RetireIncident and the saved alerts change as
// stale; every other method is the transaction's.
type view struct {
	*store.IncidentTx
	base *memo
	gen  store.IncidentGeneration

	alerts         map[string]event.Alert
	citations      map[string]event.Citation
	incidents      map[string]store.Incident
	keys           map[string]store.AlertKeys
	sources        map[string]int
	absent         map[string]bool // references this transaction found without a citation
	unabsent       map[string]bool // references this transaction stored a citation of
	staleAlerts    map[string]bool
	staleIncidents map[string]bool
	staleSources   map[string]bool
	// derived answers from the memo's and keeps what this transaction
	// derives apart until it commits.
	derived *incident.Derivations
}

// begin returns the view of transaction tx, first making the view of the
// Keeper's previous transaction the memo if that transaction committed and
// nothing was written since, or forgetting the memo if anything else was
// written since it was valid. The caller holds k.mu.
func (k *Keeper) begin(tx *store.IncidentTx) *view {
	gen := tx.Generation()
	switch p := k.pending; {
	case p != nil && gen.Follows(p.gen):
		k.memo = p.commit()
	case k.memo != nil && gen.Follows(k.memo.gen):
		// The previous transaction rolled back: the memo still holds.
	default:
		k.memo = nil
	}
	k.pending = nil
	derived := incident.NewDerivations()
	if k.memo != nil {
		derived = k.memo.derived
	}
	return &view{IncidentTx: tx, base: k.memo, gen: gen,
		alerts: map[string]event.Alert{}, citations: map[string]event.Citation{}, incidents: map[string]store.Incident{},
		keys: map[string]store.AlertKeys{}, sources: map[string]int{}, absent: map[string]bool{}, unabsent: map[string]bool{},
		staleAlerts: map[string]bool{}, staleIncidents: map[string]bool{}, staleSources: map[string]bool{},
		derived: derived.Over()}
}

// commit returns the memo valid after v's transaction: its base without
// what v made stale, with what v read.
func (v *view) commit() *memo {
	m := v.base
	if m == nil {
		m = &memo{alerts: map[string]event.Alert{}, citations: map[string]event.Citation{}, incidents: map[string]store.Incident{},
			keys: map[string]store.AlertKeys{}, sources: map[string]int{}, absent: map[string]bool{}, derived: incident.NewDerivations()}
	}
	m.derived.Merge(v.derived, memoAlerts)
	m.gen = v.gen
	for id := range v.staleAlerts {
		delete(m.alerts, id)
	}
	for id := range v.staleIncidents {
		delete(m.incidents, id)
	}
	for ip := range v.staleSources {
		delete(m.sources, ip)
	}
	for r := range v.unabsent {
		delete(m.absent, r)
	}
	m.keys = merge(m.keys, v.keys, memoAlerts)
	m.sources = merge(m.sources, v.sources, memoCitations)
	m.alerts = merge(m.alerts, v.alerts, memoAlerts)
	m.citations = merge(m.citations, v.citations, memoCitations)
	m.absent = merge(m.absent, v.absent, memoCitations)
	m.incidents = merge(m.incidents, v.incidents, memoIncidents)
	return m
}

// merge adds add to m, starting over from add alone when m would pass
// limit.
func merge[V any](m, add map[string]V, limit int) map[string]V {
	if len(m)+len(add) > limit {
		m = make(map[string]V, len(add))
	}
	for k, x := range add {
		m[k] = x
	}
	return m
}

// staleAlert marks alert id as written by this transaction.
func (v *view) staleAlert(id string) {
	v.staleAlerts[id] = true
	delete(v.alerts, id)
}

func (v *view) alert(id string) (event.Alert, bool) {
	if a, ok := v.alerts[id]; ok {
		return a, true
	}
	if v.base != nil && !v.staleAlerts[id] {
		a, ok := v.base.alerts[id]
		return a, ok
	}
	return event.Alert{}, false
}

// Alerts is store.IncidentTx.Alerts: the stored alerts ids, with their
// findings, in ID order; unknown IDs are left out.
func (v *view) Alerts(ctx context.Context, ids []string) ([]event.Alert, error) {
	return readThrough(ctx, compact(ids), v.alert, v.IncidentTx.Alerts, func(a event.Alert) { v.alerts[a.ID] = a })
}

// readThrough answers ids from memory (have), reading the ones it lacks
// with read in one call and remembering them (keep), in the order of ids;
// ids read but not stored are left out.
func readThrough[T any](ctx context.Context, ids []string, have func(string) (T, bool),
	read func(context.Context, []string) ([]T, error), keep func(T)) ([]T, error) {
	var miss []string
	for _, id := range ids {
		if _, ok := have(id); !ok {
			miss = append(miss, id)
		}
	}
	if len(miss) > 0 {
		got, err := read(ctx, miss)
		if err != nil {
			return nil, err
		}
		for _, x := range got {
			keep(x)
		}
	}
	out := make([]T, 0, len(ids))
	for _, id := range ids {
		if x, ok := have(id); ok {
			out = append(out, x)
		}
	}
	return out, nil
}

// Citations is store.IncidentTx.Citations. A stored citation never changes
// (the first of a reference wins), so only references not yet read are
// read.
func (v *view) Citations(ctx context.Context, refs []string) (map[string]event.Citation, error) {
	out := make(map[string]event.Citation, len(refs))
	var miss []string
	for _, r := range refs {
		if c, ok := v.citations[r]; ok {
			out[r] = c
			continue
		}
		if v.base != nil {
			if c, ok := v.base.citations[r]; ok {
				out[r] = c
				continue
			}
		}
		if v.knownAbsent(r) {
			continue
		}
		miss = append(miss, r)
	}
	if len(miss) == 0 {
		return out, nil
	}
	cs, err := v.IncidentTx.Citations(ctx, miss)
	if err != nil {
		return nil, err
	}
	for r, c := range cs {
		v.citations[r] = c
		out[r] = c
	}
	for _, r := range miss {
		if _, ok := cs[r]; !ok {
			v.absent[r] = true
		}
	}
	return out, nil
}

// knownAbsent reports whether reference r is known to have no stored
// citation: read so in this transaction, or by the memo and not stored
// since.
func (v *view) knownAbsent(r string) bool {
	return v.absent[r] || (v.base != nil && !v.unabsent[r] && v.base.absent[r])
}

func (v *view) incident(id string) (store.Incident, bool) {
	if in, ok := v.incidents[id]; ok {
		return in, true
	}
	if v.base != nil && !v.staleIncidents[id] {
		in, ok := v.base.incidents[id]
		return in, ok
	}
	return store.Incident{}, false
}

// Incidents is store.IncidentTx.Incidents: the stored incidents ids (Body
// included), in ID order; unknown IDs are left out.
func (v *view) Incidents(ctx context.Context, ids []string) ([]store.Incident, error) {
	return readThrough(ctx, compact(ids), v.incident, v.IncidentTx.Incidents, func(in store.Incident) { v.incidents[in.ID] = in })
}

// staleIncident marks incident id as written by this transaction.
func (v *view) staleIncident(id string) {
	v.staleIncidents[id] = true
	delete(v.incidents, id)
}

// PutIncident is store.IncidentTx.PutIncident; what it stored is what
// Incidents answers for in.ID from then on.
func (v *view) PutIncident(ctx context.Context, in store.Incident, alertIDs []string) (store.Incident, error) {
	v.staleIncident(in.ID)
	stored, err := v.IncidentTx.PutIncident(ctx, in, alertIDs)
	if err != nil {
		return store.Incident{}, err
	}
	v.incidents[in.ID] = stored
	return stored, nil
}

// RetireIncident is store.IncidentTx.RetireIncident.
func (v *view) RetireIncident(ctx context.Context, id, founder, successor string) error {
	v.staleIncident(id)
	return v.IncidentTx.RetireIncident(ctx, id, founder, successor)
}

// SetAlertsKeys is store.IncidentTx.SetAlertsKeys, leaving out the
// alerts whose stored keys are known to be these already and giving the
// store the keys known to be stored for the others (Stored), so that it
// writes only the difference (only SetAlertsKeys writes them).
func (v *view) SetAlertsKeys(ctx context.Context, as []store.AlertKeys) error {
	last := make(map[string]int, len(as))
	for i, a := range as {
		last[a.ID] = i
	}
	var write []store.AlertKeys
	for i, a := range as {
		if last[a.ID] != i {
			continue // an alert given twice keeps its last keys
		}
		a.Stored = nil
		known, ok := v.keys[a.ID]
		if !ok && v.base != nil {
			known, ok = v.base.keys[a.ID]
		}
		if ok && slices.Equal(known.Named, a.Named) && slices.Equal(known.Cited, a.Cited) {
			continue
		}
		if ok {
			a.Stored = &known
		}
		write = append(write, a)
	}
	if err := v.IncidentTx.SetAlertsKeys(ctx, write); err != nil {
		return err
	}
	for _, a := range write {
		v.keys[a.ID] = store.AlertKeys{ID: a.ID, Named: a.Named, Cited: a.Cited}
	}
	return nil
}

// PutCitations is store.IncidentTx.PutCitations, leaving out the
// citations known to be stored. The addresses of the others may count
// more principals after it (SourcePrincipals).
func (v *view) PutCitations(ctx context.Context, cs []event.Citation) error {
	put := cs[:0:0]
	for _, c := range cs {
		// A reference whose citation was read is stored: the store would
		// keep that one (the first of a reference wins), so it is not
		// written again.
		if _, ok := v.citations[c.Ref]; ok {
			continue
		}
		if v.base != nil {
			if _, ok := v.base.citations[c.Ref]; ok {
				continue
			}
		}
		// Stored now, unless it was already: either way no longer absent.
		delete(v.absent, c.Ref)
		v.unabsent[c.Ref] = true
		v.staleSources[c.Source] = true
		delete(v.sources, c.Source)
		put = append(put, c)
	}
	return v.IncidentTx.PutCitations(ctx, put)
}

// SourcePrincipals is store.IncidentTx.SourcePrincipals: per address, how
// many distinct principals the stored citations show acting from it
// successfully (addresses with none absent).
func (v *view) SourcePrincipals(ctx context.Context, ips []string) (map[string]int, error) {
	out := map[string]int{}
	var miss []string
	for _, ip := range ips {
		n, ok := v.sources[ip]
		if !ok && v.base != nil && !v.staleSources[ip] {
			n, ok = v.base.sources[ip]
		}
		switch {
		case !ok:
			miss = append(miss, ip)
		case n > 0:
			out[ip] = n
		}
	}
	if len(miss) == 0 {
		return out, nil
	}
	got, err := v.IncidentTx.SourcePrincipals(ctx, miss)
	if err != nil {
		return nil, err
	}
	for _, ip := range miss {
		n := got[ip]
		v.sources[ip] = n
		if n > 0 {
			out[ip] = n
		}
	}
	return out, nil
}
