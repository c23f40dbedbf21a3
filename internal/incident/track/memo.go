package track

import (
	"context"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// Bounds of what a Keeper remembers (package doc, "Memory"): past one, that
// part is forgotten and read again as batches need it.
const (
	memoAlerts    = 16384  // stored alerts with their findings
	memoCitations = 262144 // citations (about 200 bytes each)
	memoIncidents = 8192   // stored incidents with their detail
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
	staleAlerts    map[string]bool
	staleIncidents map[string]bool
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
	return &view{IncidentTx: tx, base: k.memo, gen: gen,
		alerts: map[string]event.Alert{}, citations: map[string]event.Citation{}, incidents: map[string]store.Incident{},
		staleAlerts: map[string]bool{}, staleIncidents: map[string]bool{}}
}

// commit returns the memo valid after v's transaction: its base without
// what v made stale, with what v read.
func (v *view) commit() *memo {
	m := v.base
	if m == nil {
		m = &memo{alerts: map[string]event.Alert{}, citations: map[string]event.Citation{}, incidents: map[string]store.Incident{}}
	}
	m.gen = v.gen
	for id := range v.staleAlerts {
		delete(m.alerts, id)
	}
	for id := range v.staleIncidents {
		delete(m.incidents, id)
	}
	m.alerts = merge(m.alerts, v.alerts, memoAlerts)
	m.citations = merge(m.citations, v.citations, memoCitations)
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
	ids = compact(ids)
	var miss []string
	for _, id := range ids {
		if _, ok := v.alert(id); !ok {
			miss = append(miss, id)
		}
	}
	if len(miss) > 0 {
		as, err := v.IncidentTx.Alerts(ctx, miss)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			v.alerts[a.ID] = a
		}
	}
	out := make([]event.Alert, 0, len(ids))
	for _, id := range ids {
		if a, ok := v.alert(id); ok {
			out = append(out, a)
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
	return out, nil
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
	ids = compact(ids)
	var miss []string
	for _, id := range ids {
		if _, ok := v.incident(id); !ok {
			miss = append(miss, id)
		}
	}
	if len(miss) > 0 {
		ins, err := v.IncidentTx.Incidents(ctx, miss)
		if err != nil {
			return nil, err
		}
		for _, in := range ins {
			v.incidents[in.ID] = in
		}
	}
	out := make([]store.Incident, 0, len(ids))
	for _, id := range ids {
		if in, ok := v.incident(id); ok {
			out = append(out, in)
		}
	}
	return out, nil
}

// staleIncident marks incident id as written by this transaction.
func (v *view) staleIncident(id string) {
	v.staleIncidents[id] = true
	delete(v.incidents, id)
}

// PutIncident is store.IncidentTx.PutIncident.
func (v *view) PutIncident(ctx context.Context, in store.Incident, alertIDs []string) error {
	v.staleIncident(in.ID)
	return v.IncidentTx.PutIncident(ctx, in, alertIDs)
}

// RetireIncident is store.IncidentTx.RetireIncident.
func (v *view) RetireIncident(ctx context.Context, id, founder, successor string) error {
	v.staleIncident(id)
	return v.IncidentTx.RetireIncident(ctx, id, founder, successor)
}
