// Package track keeps incidents in the store as alerts are stored: a
// store.IncidentKeeper that assigns every saved alert to an incident with
// incident.Group's rules, incrementally, inside the transaction that saves
// the alert (docs/alerts.md, "Incidents").
//
// # How
//
// For a batch of saved alerts the Keeper
//
//  1. stores what the events their findings cite were (event.Citation,
//     filled in by the engine): the facts grouping needs, kept without
//     the stream;
//  2. stores each alert's join keys (incident.JoinKeys) and finds the
//     stored alerts sharing one — a named key with any stored key, a cited
//     key with a stored named key — and the incidents those alerts and the
//     saved ones are in; then, until no more come, the alerts sharing a
//     stolen-token campaign key with any alert of those incidents, and
//     theirs (incident.TokenCampaignJoinKeys: a campaign's activity
//     through one key decides joins through another);
//  3. regroups the alerts of those incidents and the saved alerts with
//     incident.Group over facts answered from the stored citations — the
//     rules live in package incident alone;
//  4. writes the resulting incidents, retiring stored ones that are no
//     longer anyone's.
//
// # Identity
//
// An incident's ID is incident.IDFor of its founding alert, its earliest
// (by time, then ID), as Group gives it; alert IDs are themselves
// deterministic, so the same alerts give the same incident IDs in serve,
// replay, after restarts, on both stores and in cluster mode (the store
// serialises keepers across processes). When an alert bridges two stored
// incidents the merged incident is founded by the earlier founder, so the
// older incident keeps its ID, and the other ID becomes an alias that
// resolves, through its founding alert, to the incident that alert is in
// now (store.GetIncident). A late alert earlier than an incident's founder
// refounds it likewise (the old ID an alias). The merged incident keeps
// the state, verdict and creation time of the incident that keeps its ID
// — or, refounded, of the oldest incident it absorbed.
//
// # Memory
//
// A Keeper remembers, between its batches, what it read and wrote: the
// stored alerts of the incidents it touched (with their findings), the
// citations, the incidents (as PutIncident stored them), each alert's
// join keys and the principals per address. It trusts that only while the
// store's incident generation (store.IncidentGeneration) shows its own
// previous transaction committed and nothing else — another process's
// alert save or keeper, an incident verdict — was written since; else it
// forgets everything and reads again. So a batch touching an incident of
// a thousand alerts reads the rows that changed, not the incident again:
// the membership and key lookups still go to the store, and the
// regrouping (incident.GroupWith over the neighbourhood) still runs,
// which keeps the incidents exactly what reading everything gives. The
// saved alerts themselves are not read back: the store says what it holds
// for them (store.StoredAlert: their stored columns, as a read would give
// them), and they are read only when it cannot. The
// regrouping reuses what it derived from each remembered alert whose
// findings and accusations are as they were (incident.Derivations), and
// the join keys of an alert saved again are written as the difference
// from the keys remembered stored (store.AlertKeys.Stored). What it
// remembers is bounded (memoAlerts, memoCitations, memoIncidents): past a
// bound that part starts over.
//
// # Limits
//
// Grouping runs over the neighbourhood of the saved alerts (the incidents
// sharing a key with them), not over every stored alert, so an entity's
// hub status (incident.Options.HubFanIn) is judged over that
// neighbourhood; and a source address is judged shared
// (incident.Options.SharedSource) by the principals its cited events
// show, not by all its traffic; an address the batch's citations make
// shared regroups the alerts naming it. The closure over stolen-token
// campaign keys is not bounded in time: a batch touching a campaign reads
// every stored alert sharing its keys. Each batch regroups the alerts of
// the incidents it touches: the cost of a batch grows with the size of
// those incidents (less when the Keeper remembers them: # Memory).
package track

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/incident"
	"github.com/haechi-sec/haechi/internal/store"
)

// Options configure a Keeper.
type Options struct {
	// Grouping tunes the grouping (zero values: incident's defaults).
	Grouping incident.Options
}

// Change kinds.
const (
	ChangeOpened = "opened" // a new incident
	ChangeGrew   = "grew"   // it reached a milestone of its alert count (possibly by a merge)
)

// Change is one incident a batch opened or grew to a milestone: the
// detail of its notice (store.IncidentTx.Notify).
//
// Notices do not depend on how alerts were batched (a restart re-batches
// them): an incident ID is announced "opened" once, when a batch founds
// it without absorbing a stored incident, and "grew" once per milestone
// of its alert count (Milestones: 2, 4, 8, …) that it reaches or passes
// and had not reached before, each with its own notice, so a 500-alert
// incident sends nine. A merge or refounding announces on the surviving
// ID: the milestones past that ID's stored count. Each notice is keyed by
// incident ID, kind and milestone (Key), and timed by the event time of
// what it announces (At), so the same alerts give the same notices
// however they arrive.
type Change struct {
	Kind     string         `json:"kind"`
	Incident store.Incident `json:"incident"`
	// Milestone is the alert count a "grew" notice announces (0 for
	// "opened").
	Milestone int `json:"milestone,omitempty"`
	// At is the event time of what it announces: the incident's start
	// when opened, the time of its Milestone-th alert (by time) when grew.
	At time.Time `json:"at"`
	// Added are the alerts the incident gained in the batch.
	Added []string `json:"added"`
	// Merged are the incident IDs it absorbed in the batch (now aliases
	// of it).
	Merged []string `json:"merged,omitempty"`
}

// Key identifies the notice among its incident's: its kind and milestone.
func (c Change) Key() string { return c.Kind + "/" + strconv.Itoa(c.Milestone) }

// Milestones returns the alert counts in (from, to] a "grew" notice
// announces: the powers of two from 2.
func Milestones(from, to int) []int {
	var out []int
	for m := 2; m > 0 && m <= to; m *= 2 {
		if m > from {
			out = append(out, m)
		}
	}
	return out
}

// Keeper implements store.IncidentKeeper.
type Keeper struct {
	opts Options

	// readBack (tests) reads the saved alerts back from the store rather
	// than taking them as store.StoredAlert gives them.
	readBack bool

	mu      sync.Mutex // held through AlertsSaved
	memo    *memo      // what its last committed transaction left known; nil: nothing
	pending *view      // its last transaction, until the next shows whether it committed
}

var _ store.IncidentKeeper = (*Keeper)(nil)

// New returns a Keeper.
func New(opts Options) *Keeper { return &Keeper{opts: opts} }

// AlertsSaved implements store.IncidentKeeper (package doc).
func (k *Keeper) AlertsSaved(ctx context.Context, stx *store.IncidentTx, saved []event.Alert) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	tx := k.begin(stx)
	for i := range saved {
		tx.staleAlert(saved[i].ID)
		// What the store now holds for it, known without reading it back.
		if a, ok := store.StoredAlert(&saved[i]); ok && !k.readBack {
			tx.alerts[a.ID] = a
		}
	}
	if err := k.alertsSaved(ctx, tx, saved); err != nil {
		return err // the transaction rolls back: nothing of it is remembered
	}
	k.pending = tx
	return nil
}

// alertsSaved is AlertsSaved in the view tx.
func (k *Keeper) alertsSaved(ctx context.Context, tx *view, saved []event.Alert) error {
	if len(saved) == 0 {
		return nil
	}
	all, alerts, touched, prevOf, err := k.neighbourhood(ctx, tx, saved)
	if err != nil {
		return err
	}
	fx, err := loadFacts(ctx, tx, alerts)
	if err != nil {
		return err
	}
	olds, err := tx.Incidents(ctx, keys(touched))
	if err != nil {
		return err
	}
	old := map[string]store.Incident{}
	for _, in := range olds {
		old[in.ID] = in
	}

	// 3. Regroup.
	groups := incident.GroupWith(alerts, fx, k.opts.Grouping, tx.derived)
	byID := make(map[string]*event.Alert, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		if prev, ok := byID[a.ID]; !ok || a.LastTime.After(prev.LastTime) || len(a.Findings) > len(prev.Findings) {
			byID[a.ID] = a
		}
	}

	// 4. Write: retire what is no longer an incident, then put the groups.
	current := map[string]bool{}
	for _, g := range groups {
		current[g.ID] = true
	}
	for _, in := range olds {
		if current[in.ID] {
			continue
		}
		// Its successor: the first incident (by start) holding one of its
		// alerts.
		successor := ""
		for _, g := range groups {
			if slices.ContainsFunc(g.AlertIDs, func(a string) bool { return prevOf[a] == in.ID }) {
				successor = g.ID
				break
			}
		}
		if err := tx.RetireIncident(ctx, in.ID, in.Founder, successor); err != nil {
			return err
		}
	}
	grouped := map[string]bool{}
	for _, g := range groups {
		var prevs []string // the stored incidents its alerts were in
		var added []string
		for _, a := range g.AlertIDs {
			grouped[a] = true
			p, ok := prevOf[a]
			switch {
			case !ok:
				added = append(added, a)
			case !slices.Contains(prevs, p):
				prevs = append(prevs, p)
			}
			if ok && p != g.ID {
				added = append(added, a)
			}
		}
		rule := ScopeRule(g, byID, fx)
		rec := store.Incident{ID: g.ID, Founder: g.AlertIDs[0], Title: g.Title, Attack: g.Attack, Severity: g.Severity,
			State: string(g.State), Start: g.Start, End: g.End, AlertCount: len(g.AlertIDs), Entities: ScopeEntities(rule),
			Scope: rule}
		// State, verdict and creation come from the incident that keeps
		// its ID, else from the oldest one absorbed.
		from, ok := old[g.ID]
		if !ok {
			for _, p := range prevs {
				if o, ok2 := old[p]; ok2 && (!ok || o.Start.Before(from.Start) || (o.Start.Equal(from.Start) && o.ID < from.ID)) {
					from, ok = o, true
				}
			}
		}
		if ok {
			rec.State, rec.Verdict, rec.Note, rec.VerdictBy, rec.VerdictAt, rec.Created =
				from.State, from.Verdict, from.Note, from.VerdictBy, from.VerdictAt, from.Created
			g.State = incident.State(from.State)
		}
		body, err := json.Marshal(g)
		if err != nil {
			return fmt.Errorf("incident %s: %w", g.ID, err)
		}
		rec.Body = body
		prev, existed := old[g.ID]
		if !existed {
			if err := tx.UnaliasIncident(ctx, g.ID); err != nil {
				return err
			}
		}
		// Only the alerts that were not in it are (re)assigned, and an
		// incident the batch left as it was is not rewritten.
		var moved []string
		for _, a := range g.AlertIDs {
			if prevOf[a] != g.ID {
				moved = append(moved, a)
			}
		}
		if !existed || len(moved) > 0 || !sameRecord(prev, rec) {
			if _, err := tx.PutIncident(ctx, rec, moved); err != nil {
				return err
			}
		}
		if len(added) == 0 {
			continue
		}
		if err := k.notify(ctx, tx, g, rec, prev, existed, prevs, added, alerts); err != nil {
			return err
		}
	}
	// Alerts Group left out (withdrawn) leave their incidents.
	var dropped []string
	for _, id := range all {
		if _, ok := prevOf[id]; ok && !grouped[id] {
			dropped = append(dropped, id)
		}
	}
	return tx.DropAlerts(ctx, dropped)
}

// notify writes the notices of group g (stored as rec; prev the stored
// incident of its ID when existed), which gained added and held alerts of
// the stored incidents prevs (Change).
// neighbourhood stores the citations and join keys of the saved alerts and
// returns the alerts Group must see again — the saved ones, the stored ones
// sharing a key with them (a cited key only with alerts naming it), those
// naming an address the batch made shared, every alert of the incidents
// these are in, and, until no more come, the alerts sharing a stolen-token
// campaign key with any of those and the alerts of their incidents (a
// campaign's activity through one key decides joins through another) —
// their IDs and the alerts, with the incidents they are in (touched) and
// the incident each of them in one is in (prevOf: every alert of the
// touched incidents, which are all the incidents these alerts are in).
func (k *Keeper) neighbourhood(ctx context.Context, tx *view, saved []event.Alert) (
	all []string, alerts []event.Alert, touched map[string]bool, prevOf map[string]string, err error) {
	ids, touched, prevOf, err := k.keyNeighbourhood(ctx, tx, saved)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	loaded := map[string]bool{}
	queried := map[string]bool{} // the saved alerts' keys were queried already
	for i := range saved {
		queried[saved[i].ID] = true
	}
	for {
		var fresh []string
		for _, id := range keys(ids) {
			if !loaded[id] {
				fresh = append(fresh, id)
				loaded[id] = true
			}
		}
		if len(fresh) == 0 {
			break
		}
		as, err := tx.Alerts(ctx, fresh)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		alerts = append(alerts, as...)
		var cands []event.Alert
		for i := range as {
			if !queried[as[i].ID] && incident.MayJoinTokenCampaign(as[i]) {
				cands = append(cands, as[i])
			}
		}
		if len(cands) == 0 {
			break
		}
		fx, err := loadFacts(ctx, tx, cands)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		var ks []string
		for i := range cands {
			ks = append(ks, hashKeys(incident.TokenCampaignJoinKeys(cands[i], fx))...)
		}
		more, err := tx.AlertsWithKeys(ctx, compact(ks), false)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		var found []string
		for _, id := range more {
			if !ids[id] {
				ids[id] = true
				found = append(found, id)
			}
		}
		if err := k.addIncidents(ctx, tx, found, ids, touched, prevOf); err != nil {
			return nil, nil, nil, nil, err
		}
	}
	return keys(ids), alerts, touched, prevOf, nil
}

// addIncidents adds the incidents of the alerts found to touched, and
// their alerts to ids and, with the incident they are in, to prevOf.
func (k *Keeper) addIncidents(ctx context.Context, tx *view, found []string, ids, touched map[string]bool,
	prevOf map[string]string) error {
	if len(found) == 0 {
		return nil
	}
	of, err := tx.IncidentsOfAlerts(ctx, found)
	if err != nil {
		return err
	}
	var ins []string
	for _, in := range of {
		if !touched[in] {
			touched[in] = true
			ins = append(ins, in)
		}
	}
	inAlerts, err := tx.AlertsOfIncidents(ctx, compact(ins))
	if err != nil {
		return err
	}
	for id, in := range inAlerts {
		ids[id] = true
		prevOf[id] = in
	}
	return nil
}

// keyNeighbourhood is neighbourhood without the stolen-token campaigns'
// closure: the IDs, the incidents they are in, and the incident of each
// (those in one).
func (k *Keeper) keyNeighbourhood(ctx context.Context, tx *view, saved []event.Alert) (
	map[string]bool, map[string]bool, map[string]string, error) {
	// 1. Citations, and the addresses they make shared.
	var cs []event.Citation
	for i := range saved {
		for fi := range saved[i].Findings {
			cs = append(cs, saved[i].Findings[fi].Cited...)
		}
	}
	flipped, err := k.putCitations(ctx, tx, cs)
	if err != nil {
		return nil, nil, nil, err
	}
	fx, err := loadFacts(ctx, tx, saved)
	if err != nil {
		return nil, nil, nil, err
	}
	// 2. Keys and the neighbourhood.
	var named, cited []string
	ids := map[string]bool{}
	set := make([]store.AlertKeys, 0, len(saved))
	for i := range saved {
		a := saved[i]
		n, c := incident.JoinKeys(a, fx)
		n, c = hashKeys(n), hashKeys(c)
		set = append(set, store.AlertKeys{ID: a.ID, Named: n, Cited: c})
		named, cited = append(named, n...), append(cited, c...)
		ids[a.ID] = true
	}
	if err := tx.SetAlertsKeys(ctx, set); err != nil {
		return nil, nil, nil, err
	}
	for _, q := range []struct {
		keys      []string
		namedOnly bool
	}{{named, false}, {cited, true}, {flipped, true}} {
		more, err := tx.AlertsWithKeys(ctx, compact(q.keys), q.namedOnly)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, id := range more {
			ids[id] = true
		}
	}
	prevOf, err := tx.IncidentsOfAlerts(ctx, keys(ids))
	if err != nil {
		return nil, nil, nil, err
	}
	touched := map[string]bool{}
	for _, in := range prevOf {
		touched[in] = true
	}
	inAlerts, err := tx.AlertsOfIncidents(ctx, keys(touched))
	if err != nil {
		return nil, nil, nil, err
	}
	for id := range inAlerts {
		ids[id] = true
	}
	return ids, touched, inAlerts, nil
}

func (k *Keeper) notify(ctx context.Context, tx *view, g incident.Incident, rec, prev store.Incident,
	existed bool, prevs, added []string, alerts []event.Alert) error {
	rec.Body = nil
	var merged []string
	for _, p := range prevs {
		if p != g.ID {
			merged = append(merged, p)
		}
	}
	var cs []Change
	if len(prevs) == 0 {
		cs = append(cs, Change{Kind: ChangeOpened, At: g.Start})
	}
	from := 0
	if existed {
		from = prev.AlertCount
	}
	if ms := Milestones(from, len(g.AlertIDs)); len(ms) > 0 {
		at := map[string]time.Time{}
		for i := range alerts {
			at[alerts[i].ID] = alerts[i].Time
		}
		for _, m := range ms {
			cs = append(cs, Change{Kind: ChangeGrew, Milestone: m, At: at[g.AlertIDs[m-1]]})
		}
	}
	for _, c := range cs {
		c.Incident, c.Added, c.Merged = rec, added, merged
		// The store's incident notice (a webhook through the outbox), in
		// this transaction.
		if err := tx.Notify(ctx, c.Kind, rec, c); err != nil {
			return err
		}
	}
	return nil
}

// sameRecord reports whether the stored incident a and the regrouped b
// hold the same (the wall times aside).
func sameRecord(a, b store.Incident) bool {
	return a.ID == b.ID && a.Founder == b.Founder && a.Title == b.Title && a.Attack == b.Attack &&
		a.Severity == b.Severity && a.State == b.State && a.Start.Equal(b.Start) && a.End.Equal(b.End) &&
		a.AlertCount == b.AlertCount && slices.Equal(a.Entities, b.Entities) && string(a.Body) == string(b.Body) &&
		reflect.DeepEqual(a.Scope, b.Scope)
}

// putCitations stores cs and returns the join keys (hashed) of the
// source addresses they made shared: those with fewer than SharedSource
// principals before and at least as many after. An address becoming
// shared is a hub from then on (incident.Options.SharedSource), so the
// alerts naming it are regrouped even when no alert of the batch names
// it — or they would stay joined through it.
func (k *Keeper) putCitations(ctx context.Context, tx *view, cs []event.Citation) ([]string, error) {
	srcs := map[string]bool{}
	for _, c := range cs {
		if c.Success && c.Principal != "" && c.Source != "" {
			srcs[c.Source] = true
		}
	}
	ips := keys(srcs)
	before, err := tx.SourcePrincipals(ctx, ips)
	if err != nil {
		return nil, err
	}
	if err := tx.PutCitations(ctx, cs); err != nil {
		return nil, err
	}
	after, err := tx.SourcePrincipals(ctx, ips)
	if err != nil {
		return nil, err
	}
	shared := k.opts.Grouping.SharedSource
	if shared <= 0 {
		shared = incident.DefaultSharedSource
	}
	var flipped []string
	for _, ip := range ips {
		if before[ip] < shared && after[ip] >= shared {
			flipped = append(flipped, incident.EntityJoinKey(event.EntityKey{Kind: event.EntitySource, ID: ip}))
		}
	}
	return hashKeys(flipped), nil
}

// facts answers incident.Facts from stored citations.
type facts struct {
	events  map[string]incident.EventFacts
	sources map[string]int
}

func (f *facts) Event(ref string) (incident.EventFacts, bool) { x, ok := f.events[ref]; return x, ok }
func (f *facts) Source(ip string) (int, bool)                 { n, ok := f.sources[ip]; return n, ok }

// loadFacts loads the citations of the events alerts cite, and how many
// principals the citations show acting from the addresses they name.
func loadFacts(ctx context.Context, tx *view, alerts []event.Alert) (*facts, error) {
	refs, ips := map[string]bool{}, map[string]bool{}
	named := func(e event.EntityKey) {
		if e.Kind == event.EntitySource {
			ips[e.ID] = true
		}
	}
	for i := range alerts {
		a := &alerts[i]
		named(a.Entity)
		for fi := range a.Findings {
			f := &a.Findings[fi]
			named(f.Entity)
			for _, r := range f.Related {
				named(r)
			}
			for _, r := range f.Evidence {
				refs[r] = true
			}
		}
	}
	cs, err := tx.Citations(ctx, keys(refs))
	if err != nil {
		return nil, err
	}
	fx := &facts{events: make(map[string]incident.EventFacts, len(cs))}
	for ref, c := range cs {
		fx.events[ref] = incident.EventFacts{Success: c.Success, Principal: c.Principal, Token: c.Token, Key: c.Key,
			Source: c.Source, ASN: c.ASN, UserAgent: c.UserAgent, Country: c.Country}
	}
	if fx.sources, err = tx.SourcePrincipals(ctx, keys(ips)); err != nil {
		return nil, err
	}
	return fx, nil
}

// hashKeys maps join keys to fixed-width text a database indexes well
// (PostgreSQL's text holds no NUL, which campaign keys contain). A
// collision only adds an alert to a neighbourhood; Group still decides.
func hashKeys(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		h := sha256.Sum256([]byte(k))
		out[i] = hex.EncodeToString(h[:16])
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func compact(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}
