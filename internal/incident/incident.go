// Package incident groups alerts into incidents: the alerts of one attack,
// with a title naming it, a timeline, the entity graph and the maximum
// severity (docs/alerts.md, "Incidents").
//
// # What joins two alerts
//
// Group is a union-find over the alerts, joined through the entities they
// name:
//
//   - The alert's own entity (its subject) and the entities its findings
//     name (Finding.Entity and Finding.Related: the detector implicated
//     them). A key or a token joins every alert naming it, whenever it
//     was: a credential is the attack's instrument, and the ghost-key
//     forgery goes on for weeks. A principal joins likewise (a slow
//     insider raises an alert a week). A source address joins only alerts
//     whose spans are less than Options.SourceGap apart, chained in time:
//     addresses are reassigned, and a CGNAT address today is someone else
//     tomorrow.
//   - The events a finding cites as evidence, when Facts can tell what
//     they were: an event's signing key and token join the alert to that
//     key or token, and a successful event's principal to that principal —
//     but only when that entity is accused, the subject of an alert in the
//     same batch. An ordinary entity seen in evidence (the production key
//     that signs every customer's token, a customer a forged token
//     impersonated) glues nothing; a failed event's principal (a stuffing
//     bot's victim) is not who acted.
//   - Campaigns: alerts about source addresses or networks with the same
//     behaviour (their detector and the kind of their strongest finding;
//     failed logins across many accounts, per address or per network, are
//     one behaviour whichever detector saw them) join when they share an
//     AS or a user-agent family (the user agent with its version numbers
//     blanked) in their evidence, or a victim account (the principal of a
//     cited event, whatever its outcome), chained in time with gaps up to
//     Options.CampaignGap. A botnet rotating residential addresses across
//     ASes and user agents is one campaign when its bots share either
//     with the next bot to fail, within the gap; a network's campaign
//     alert joins its bots' alerts the same way, and through the sources
//     and tokens its findings name. An alert about a shared address
//     (Hubs) takes part in no campaign: the customers behind a carrier's
//     NAT share its AS and their browsers' user agents with a botnet on
//     the same carrier.
//   - Stolen-token campaigns: one thief replays tokens stolen from many
//     customers (an infostealer's haul, a phishing proxy's catch), each
//     token its own alert, days apart. Two alerts join when findings
//     that call the token's new user the attacker's own infrastructure
//     agree on it: token_binding_hosting (a data-centre network, where no
//     customer lives) through the AS of the event it cites — and, when a
//     token_binding_country finding of the same alert cites that event
//     too (the data centre is abroad from where the token was issued),
//     through its country: a thief renting servers near the victims
//     changes provider, not country — and token_binding_client (a
//     program, not a person's client) through the user-agent family of
//     the event it cites. A campaign is joinable while it is active: an
//     alert joins the incident of an earlier alert sharing one of its
//     keys when that incident's campaign activity — the latest of its
//     alerts with any campaign key — is at most
//     Options.TokenCampaignGap before it, so a provider the thief left
//     for a week joins again while the thief kept replaying from
//     another, and a key's alerts with no activity of their incident
//     within the gap stay apart. Nothing a crowd shares joins them — not a
//     residential or mobile carrier, not a browser's or the shop app's
//     user agent, not a country on its own, not data centres at home
//     (corporate proxies, VPN exits) across providers — so travellers
//     abroad (token_binding_country alone) and customers of one carrier
//     stay apart.
//
// # Hubs
//
// A popular entity must not glue unrelated attacks. Records never join
// anything (two attacks reading the same popular record are two attacks).
// A source address is a hub when Facts says more than Options.SharedSource
// principals acted from it successfully (a CGNAT gateway, an office; also
// a forger's server impersonating customers, whose alerts join through
// the key instead), and a source or principal is one when alerts about
// more than Options.HubFanIn other subjects name it. A hub is kept in the
// entity graph, marked, but joins only the alerts about itself. Keys and
// tokens have no cap: a credential names one custody chain, and every
// alert it signs is that chain's story. Campaign keys are scoped by
// behaviour and time, which is their cap.
//
// # Determinism
//
// Group sorts the alerts by event time and ID before anything else, and
// every choice after that follows that order or sorted keys, so the same
// alerts in any order give the same incidents. An incident's ID is "in-"
// and 16 hex digits of a hash of its founding alert's ID — its earliest
// alert (by time, then ID) — and alert IDs are themselves deterministic
// (a hash of entity, detector and event time), so replays, restarts, both
// stores and cluster mode give the same incident IDs for the same alerts.
// A late alert that is earlier than an incident's founder, or that joins
// two incidents, founds the group anew (a new ID): the later streaming
// stage that keeps incidents in the store must keep the older ID on a
// merge.
package incident

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// State is an incident's lifecycle state.
type State string

const (
	// StateOpen: the attack is under way or not yet contained.
	StateOpen State = "open"
	// StateContained: a containment covered the incident's entities (set
	// by the response stage, a later step).
	StateContained State = "contained"
	// StateClosed: an analyst closed it with a verdict (a later step).
	StateClosed State = "closed"
)

// Incident is one attack: the alerts that belong together, what joined
// them and what it is. Its JSON form is what the store and the API will
// keep; every field is a value (no pointers into the alerts).
type Incident struct {
	ID string `json:"id"`
	// Title names the attack and its founding entity, e.g. "Forged
	// tokens: key auth-2023-01 (48 sources, 520 alerts)".
	Title string `json:"title"`
	// Attack is the attack class the title names ("Forged tokens",
	// "Credential stuffing", …), from the strongest alerts' finding kinds.
	Attack   string         `json:"attack"`
	Severity event.Severity `json:"severity"` // the maximum of its alerts'
	State    State          `json:"state"`
	// Founder is the entity of the founding (earliest) alert.
	Founder event.EntityKey `json:"founder"`
	// Start and End bound the alerts' spans in event time.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// AlertIDs lists the alerts by time, then ID.
	AlertIDs []string `json:"alert_ids"`
	// Timeline has one entry per alert, by time, then ID.
	Timeline []Entry `json:"timeline"`
	Graph    Graph   `json:"graph"`
}

// Entry is one alert on an incident's timeline (event time).
type Entry struct {
	Time     time.Time       `json:"time"`
	AlertID  string          `json:"alert_id"`
	Detector string          `json:"detector"`
	Kind     string          `json:"kind"` // the strongest finding's
	Entity   event.EntityKey `json:"entity"`
	Severity event.Severity  `json:"severity"`
	Title    string          `json:"title"`
}

// Graph is the incident's entities (keys, tokens, sources, principals,
// in that order) and what links them: a key signed a token, a token was
// used from a source, a source acted as a principal, a finding about one
// entity implicated another. It is capped at Options.MaxGraphNodes nodes;
// Omitted counts the entities left out.
type Graph struct {
	Nodes   []Node `json:"nodes"`
	Edges   []Edge `json:"edges"`
	Omitted int    `json:"omitted,omitempty"`
}

// Node is one entity of the graph.
type Node struct {
	Entity event.EntityKey `json:"entity"`
	// Alerts counts the incident's alerts about the entity (their subject).
	Alerts int `json:"alerts"`
	// Hub marks an entity too popular to join alerts (package doc).
	Hub bool `json:"hub,omitempty"`
}

// Edge links two entities of the graph.
type Edge struct {
	From event.EntityKey `json:"from"`
	To   event.EntityKey `json:"to"`
}

// EventFacts is what Group needs of an event a finding cites: who acted,
// with which credential, from where.
type EventFacts struct {
	Success   bool   // event.outcome success (or unset on activity that succeeded)
	Principal string // user.id
	Token     string // token.id
	Key       string // token.key_id
	Source    string // source.ip, "" when absent
	ASN       uint32
	UserAgent string
	Country   string // source.geo.country_iso_code, "" when unknown
}

// Facts tells what the events behind evidence references were, and how
// widely a source address is shared. The
// consumer declares it: the scorecard builds one from the stream it
// replays; the serving stage will answer it from the evidence the store
// keeps. Event must be safe to call from the goroutine that calls Group
// and return ok false for a reference it does not know.
type Facts interface {
	Event(ref string) (EventFacts, bool)
	// Source tells how many distinct principals acted successfully from
	// the address (capped by the implementation at no less than
	// Options.SharedSource); ok false when unknown.
	Source(ip string) (principals int, ok bool)
}

// Options tune Group; zero values take the defaults.
type Options struct {
	// SourceGap is the longest gap in event time across which alerts
	// naming one source address still join (default 24 h).
	SourceGap time.Duration
	// CampaignGap is the longest gap across which alerts of one campaign
	// key still join (default 1 h).
	CampaignGap time.Duration
	// HubFanIn is how many other subjects may name a source or principal
	// before it is a hub (default 3).
	HubFanIn int
	// SharedSource is how many distinct principals acting successfully
	// from one address (Facts.Source) make it a shared address — a CGNAT
	// gateway, an office, a forger's server impersonating customers — and
	// so a hub (default 20).
	SharedSource int
	// TokenCampaignGap is the longest quiet time after which a
	// stolen-token campaign is no longer joinable: an alert joins the
	// incident of an earlier alert sharing a campaign key when the
	// incident's latest campaign alert is at most this far before it
	// (default 7 days).
	TokenCampaignGap time.Duration
	// MaxGraphNodes caps an incident's graph (default 256).
	MaxGraphNodes int
}

// Defaults of Options.
const (
	DefaultSourceGap   = 24 * time.Hour
	DefaultCampaignGap = time.Hour
	// DefaultTokenCampaignGap: a thief works through stolen sessions for
	// days (each token is live for hours to days and is used when it
	// comes in), and a week spans a weekend's pause.
	DefaultTokenCampaignGap = 7 * 24 * time.Hour
	DefaultHubFanIn         = 3
	DefaultSharedSource     = 20
	DefaultMaxGraphNodes    = 256
)

func (o Options) withDefaults() Options {
	if o.SourceGap <= 0 {
		o.SourceGap = DefaultSourceGap
	}
	if o.CampaignGap <= 0 {
		o.CampaignGap = DefaultCampaignGap
	}
	if o.TokenCampaignGap <= 0 {
		o.TokenCampaignGap = DefaultTokenCampaignGap
	}
	if o.HubFanIn <= 0 {
		o.HubFanIn = DefaultHubFanIn
	}
	if o.SharedSource <= 0 {
		o.SharedSource = DefaultSharedSource
	}
	if o.MaxGraphNodes <= 0 {
		o.MaxGraphNodes = DefaultMaxGraphNodes
	}
	return o
}

// IDFor returns the incident ID founded by the alert of that ID.
func IDFor(foundingAlertID string) string {
	h := sha256.Sum256([]byte("incident\x00" + foundingAlertID))
	return "in-" + hex.EncodeToString(h[:8])
}

// linkHow says how an alert names an entity.
type linkHow uint8

const (
	bySubject  linkHow = iota // the alert is about it
	byFinding                 // a finding's Entity or Related
	byEvidence                // a cited event's key, token or principal
)

type link struct {
	ent event.EntityKey
	how linkHow
}

// item is one alert and what Group derived from it.
type item struct {
	a       *event.Alert
	end     time.Time
	kind    string // the strongest finding's kind
	links   []link
	asns    []uint32
	uas     []string // user-agent families
	victims []string // principals of cited events, any outcome
	// tokenCampaign: stolen-token campaign keys (package doc).
	tokenCampaign []string
	edges         []Edge
}

// Group groups alerts into incidents (package doc). Withdrawn alerts are
// left out; an ID given twice counts once (the copy with the latest
// LastTime, then the most findings). facts may be nil: alerts then join
// only through the entities they name. Incidents are returned by start,
// then ID.
func Group(alerts []event.Alert, facts Facts, opts Options) []Incident {
	return GroupWith(alerts, facts, opts, nil)
}

// GroupWith is Group, reusing what d remembers it derived from an alert
// in an earlier call (Derivations) and remembering in d what it derives
// anew; d nil is Group. The incidents are Group's.
func GroupWith(alerts []event.Alert, facts Facts, opts Options, d *Derivations) []Incident {
	opts = opts.withDefaults()
	items := prepare(alerts)
	if len(items) == 0 {
		return []Incident{}
	}
	accused := map[event.EntityKey]bool{}
	for _, it := range items {
		accused[it.a.Entity] = true
	}
	for _, it := range items {
		if d == nil {
			derive(it, facts, accused, nil)
			continue
		}
		if dv := d.lookup(it.a, facts != nil, accused); dv != nil {
			dv.apply(it)
			continue
		}
		dv := newDerivation(it.a, facts != nil)
		derive(it, facts, accused, dv)
		d.keep(it, dv)
	}

	uf := newUnionFind(len(items))
	// Entities: the alerts naming each, and the other subjects naming it.
	naming := map[event.EntityKey][]int{}
	others := map[event.EntityKey]map[event.EntityKey]bool{}
	for i, it := range items {
		for _, l := range it.links {
			naming[l.ent] = appendOnce(naming[l.ent], i)
			if l.ent != it.a.Entity {
				if others[l.ent] == nil {
					others[l.ent] = map[event.EntityKey]bool{}
				}
				others[l.ent][it.a.Entity] = true
			}
		}
	}
	hubs := map[event.EntityKey]bool{}
	sharedSources := map[event.EntityKey]bool{} // sources Facts calls shared
	for _, ent := range sortedKeys(naming, compareEntity) {
		idx := naming[ent]
		switch ent.Kind {
		case event.EntityRecord:
			continue
		case event.EntitySource, event.EntityPrincipal:
			shared := false
			if ent.Kind == event.EntitySource && facts != nil {
				n, ok := facts.Source(ent.ID)
				shared = ok && n >= opts.SharedSource
			}
			if shared {
				sharedSources[ent] = true
			}
			if shared || len(others[ent]) > opts.HubFanIn {
				hubs[ent] = true
				// Only the alerts about the hub itself join through it.
				idx = slices.DeleteFunc(slices.Clone(idx), func(i int) bool { return items[i].a.Entity != ent })
			}
		}
		if ent.Kind == event.EntitySource {
			chain(uf, items, idx, opts.SourceGap)
			continue
		}
		for _, i := range idx[1:] {
			uf.union(idx[0], i)
		}
	}
	// Campaigns.
	campaign := map[string][]int{}
	for i, it := range items {
		if sharedSources[it.a.Entity] {
			continue // a shared address's alert joins only through itself
		}
		for _, k := range campaignKeys(it) {
			campaign[k] = append(campaign[k], i)
		}
	}
	for _, k := range sortedKeys(campaign, strings.Compare) {
		chain(uf, items, campaign[k], opts.CampaignGap)
	}
	joinTokenCampaigns(uf, items, opts.TokenCampaignGap)

	groups := map[int][]int{}
	for i := range items {
		r := uf.find(i)
		groups[r] = append(groups[r], i)
	}
	out := make([]Incident, 0, len(groups))
	for _, r := range sortedKeys(groups, cmp.Compare[int]) {
		out = append(out, build(items, groups[r], hubs, opts))
	}
	slices.SortFunc(out, func(x, y Incident) int {
		if c := x.Start.Compare(y.Start); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	return out
}

// prepare dedupes by ID, drops withdrawn alerts and sorts by time, then ID.
func prepare(alerts []event.Alert) []*item {
	byID := map[string]*event.Alert{}
	for i := range alerts {
		a := &alerts[i]
		if prev, ok := byID[a.ID]; ok {
			if c := alertEnd(a).Compare(alertEnd(prev)); c < 0 || (c == 0 && a.FindingCount <= prev.FindingCount) {
				continue
			}
		}
		byID[a.ID] = a
	}
	items := make([]*item, 0, len(byID))
	for _, a := range byID {
		if a.State == event.AlertWithdrawn {
			continue
		}
		items = append(items, &item{a: a, end: alertEnd(a)})
	}
	slices.SortFunc(items, func(x, y *item) int {
		if c := x.a.Time.Compare(y.a.Time); c != 0 {
			return c
		}
		return strings.Compare(x.a.ID, y.a.ID)
	})
	return items
}

// derive fills an item's links, campaign attributes and graph edges. rec,
// when not nil, records what of facts and accused it read.
func derive(it *item, facts Facts, accused map[event.EntityKey]bool, rec *derivation) {
	a := it.a
	isAccused := func(e event.EntityKey) bool {
		v := accused[e]
		if rec != nil {
			rec.read(e, v)
		}
		return v
	}
	// Each list keeps its first-seen order; an alert cites up to hundreds
	// of events, so a long list is looked up in a set (appendNew).
	var linked map[event.EntityKey]bool
	add := func(e event.EntityKey, how linkHow) {
		if e.IsZero() || e.Kind == event.EntityRecord {
			return
		}
		if linked == nil && len(it.links) >= scanMax {
			linked = make(map[event.EntityKey]bool, 2*len(it.links))
			for _, l := range it.links {
				linked[l.ent] = true
			}
		}
		if linked != nil {
			if linked[e] {
				return
			}
			linked[e] = true
		} else if slices.ContainsFunc(it.links, func(l link) bool { return l.ent == e }) {
			return
		}
		it.links = append(it.links, link{e, how})
	}
	var edges map[Edge]bool
	edge := func(from, to event.EntityKey) {
		if from.IsZero() || to.IsZero() || from == to {
			return
		}
		it.edges = appendNew(it.edges, &edges, Edge{From: from, To: to})
	}
	add(a.Entity, bySubject)
	// The events a token_binding_country finding of the alert cites: a
	// use abroad, seen from the country the token was issued in.
	var abroad map[string]bool
	for fi := range a.Findings {
		if f := &a.Findings[fi]; f.Withdraws == 0 && f.Kind == kindTokenCountry {
			if abroad == nil {
				abroad = map[string]bool{}
			}
			for _, ref := range f.Evidence {
				abroad[ref] = true
			}
		}
	}
	var (
		asns                   map[uint32]bool
		uas, victims, campaign map[string]bool
		family                 map[string]string // UAFamily of each user agent seen
	)
	best := -1.0
	for fi := range a.Findings {
		f := &a.Findings[fi]
		if f.Withdraws != 0 {
			continue
		}
		if f.Score > best || (f.Score == best && f.Kind < it.kind) {
			best, it.kind = f.Score, f.Kind
		}
		add(f.Entity, byFinding)
		for _, r := range f.Related {
			add(r, byFinding)
			edge(f.Entity, r)
		}
		if facts == nil {
			continue
		}
		for _, ref := range f.Evidence {
			ef, ok := facts.Event(ref)
			if !ok {
				if rec != nil {
					rec.unknown = true
				}
				continue
			}
			key := event.EntityKey{Kind: event.EntitySigningKey, ID: ef.Key}
			tok := event.EntityKey{Kind: event.EntityToken, ID: ef.Token}
			src := event.EntityKey{Kind: event.EntitySource, ID: ef.Source}
			pr := event.EntityKey{Kind: event.EntityPrincipal, ID: ef.Principal}
			if ef.Key != "" && isAccused(key) {
				add(key, byEvidence)
			}
			if ef.Token != "" && isAccused(tok) {
				add(tok, byEvidence)
			}
			if ef.Principal != "" && ef.Success && isAccused(pr) {
				add(pr, byEvidence)
			}
			if ef.Key != "" && ef.Token != "" {
				edge(key, tok)
			}
			if ef.Token != "" && ef.Source != "" {
				edge(tok, src)
			} else if ef.Key != "" && ef.Source != "" {
				edge(key, src)
			}
			if ef.Source != "" && ef.Principal != "" && ef.Success {
				edge(src, pr)
			}
			if ef.ASN != 0 {
				it.asns = appendNew(it.asns, &asns, ef.ASN)
			}
			if ef.UserAgent != "" {
				if family == nil {
					family = map[string]string{}
				}
				u, ok := family[ef.UserAgent]
				if !ok {
					u = UAFamily(ef.UserAgent)
					family[ef.UserAgent] = u
				}
				if u != "" {
					it.uas = appendNew(it.uas, &uas, u)
				}
			}
			if ef.Principal != "" {
				it.victims = appendNew(it.victims, &victims, ef.Principal)
			}
			for _, k := range tokenCampaignKeys(f.Kind, ef, abroad[ref]) {
				it.tokenCampaign = appendNew(it.tokenCampaign, &campaign, k)
			}
		}
	}
}

// scanMax is the length from which appendNew looks a list up in a set
// instead of scanning it.
const scanMax = 16

// appendNew appends x to list unless list holds it. set, nil until list
// reaches scanMax, then holds list's elements.
func appendNew[T comparable](list []T, set *map[T]bool, x T) []T {
	if *set == nil {
		if len(list) < scanMax {
			if slices.Contains(list, x) {
				return list
			}
			return append(list, x)
		}
		*set = make(map[T]bool, 2*len(list))
		for _, y := range list {
			(*set)[y] = true
		}
	}
	if (*set)[x] {
		return list
	}
	(*set)[x] = true
	return append(list, x)
}

// entityNetwork is the entity kind of a finding about a network (an AS or
// a prefix: source_fanout's network_fanout, login_campaign's).
const entityNetwork event.EntityKind = "network"

// loginFailureKinds are the finding kinds of one behaviour, failed logins
// across many accounts: one bot address's (source_fanout) and a
// network's unrecovered ones (login_campaign). Alerts of either kind are
// one campaign's when they share an AS, a user-agent family or a victim
// in time (package doc). Named here, not imported.
var loginFailureKinds = []string{"login_failure_fanout", "login_failure_campaign"}

// behaviourOf is the behaviour campaign keys are scoped by: the detector
// and kind of the alert's strongest finding, except that the failed-login
// kinds of every detector are one behaviour.
func behaviourOf(detector, kind string) string {
	if slices.Contains(loginFailureKinds, kind) {
		return "login_failure"
	}
	return detector + "/" + kind
}

// Finding kinds whose cited event names a stolen-token thief's own
// infrastructure, and the kind that places a use abroad (token_binding's;
// named here, not imported: stages do not import each other).
const (
	kindTokenHosting = "token_binding_hosting" // the event's network is a data centre
	kindTokenClient  = "token_binding_client"  // the event's client is a program
	kindTokenCountry = "token_binding_country" // the event's country is not the token's
)

// tokenCampaignKeys returns the stolen-token campaign keys a finding of
// kind gives its cited event (package doc): the AS of a hosting use, and
// its country too when the use was abroad (a token_binding_country
// finding of the same alert cites the same event); the user-agent family
// of a program's use.
func tokenCampaignKeys(kind string, ef EventFacts, abroad bool) []string {
	var keys []string
	switch kind {
	case kindTokenHosting:
		if ef.ASN != 0 {
			keys = append(keys, "as\x00"+uitoa(ef.ASN))
		}
		if abroad && ef.Country != "" {
			keys = append(keys, "hosting-abroad\x00"+strings.ToUpper(ef.Country))
		}
	case kindTokenClient:
		if u := UAFamily(ef.UserAgent); u != "" {
			keys = append(keys, "ua\x00"+u)
		}
	}
	return keys
}

// UAFamily returns a user agent's family: lower-cased, with every run of
// digits replaced by "#", so versions of one client are one family
// ("python-requests/#.#.#"); "" for an empty user agent.
func UAFamily(ua string) string {
	ua = strings.TrimSpace(ua)
	if ua == "" {
		return ""
	}
	var b strings.Builder
	digit := false
	for _, r := range strings.ToLower(ua) {
		if r >= '0' && r <= '9' {
			if !digit {
				b.WriteByte('#')
			}
			digit = true
			continue
		}
		digit = false
		b.WriteRune(r)
	}
	return b.String()
}

// joinTokenCampaigns joins the alerts with stolen-token campaign keys
// (package doc) while their campaigns are active: in time order, an alert
// joins each incident so far (union-find set) that holds an earlier alert
// sharing one of its keys and whose campaign activity — the latest end of
// its earlier alerts with any campaign key — is at most gap before it. A
// thief's campaign stays joinable through any of its keys while it keeps
// replaying stolen tokens through another, and a key's alerts further
// apart than gap from any activity of its incident stay apart. The order
// is the items' (time, then ID), so the result does not depend on the
// input order.
func joinTokenCampaigns(uf *unionFind, items []*item, gap time.Duration) {
	holders := map[string][]int{}   // key → alerts holding it so far (one per set)
	activity := map[int]time.Time{} // set root → its campaign activity so far
	for i, it := range items {
		if len(it.tokenCampaign) == 0 {
			continue
		}
		for _, k := range it.tokenCampaign {
			for _, j := range holders[k] {
				ri, rj := uf.find(i), uf.find(j)
				if ri == rj || it.a.Time.Sub(activity[rj]) > gap {
					continue
				}
				act := activity[rj]
				if a, ok := activity[ri]; ok && a.After(act) {
					act = a
				}
				uf.union(ri, rj)
				activity[uf.find(i)] = act
			}
		}
		r := uf.find(i)
		if it.end.After(activity[r]) {
			activity[r] = it.end
		}
		for _, k := range it.tokenCampaign {
			// One holder per set: drop those now in i's.
			hs := slices.DeleteFunc(holders[k], func(j int) bool { return uf.find(j) == r })
			holders[k] = append(hs, i)
		}
	}
}

// chain joins alerts idx (ascending, so by time) whose spans come within
// gap of the span so far.
func chain(uf *unionFind, items []*item, idx []int, gap time.Duration) {
	if len(idx) < 2 {
		return
	}
	idx = slices.Clone(idx)
	slices.Sort(idx)
	prev := idx[0]
	end := items[prev].end
	for _, i := range idx[1:] {
		if items[i].a.Time.Sub(end) <= gap {
			uf.union(prev, i)
			if items[i].end.After(end) {
				end = items[i].end
			}
		} else {
			end = items[i].end
		}
		prev = i
	}
}

func alertEnd(a *event.Alert) time.Time {
	if a.LastTime.After(a.Time) {
		return a.LastTime
	}
	return a.Time
}

func appendOnce(s []int, v int) []int {
	if len(s) > 0 && s[len(s)-1] == v {
		return s
	}
	return append(s, v)
}

// sortedKeys returns m's keys in the order less gives.
func sortedKeys[K comparable, V any](m map[K]V, less func(x, y K) int) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, less)
	return keys
}

func compareEntity(x, y event.EntityKey) int {
	if c := strings.Compare(string(x.Kind), string(y.Kind)); c != 0 {
		return c
	}
	return strings.Compare(x.ID, y.ID)
}

func uitoa(n uint32) string {
	if n == 0 {
		return "0"
	}
	var b [10]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}

// unionFind keeps the smallest index as each set's root, so roots follow
// the sorted order whatever the order of unions.
type unionFind struct{ parent []int }

func newUnionFind(n int) *unionFind {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	return &unionFind{parent: p}
}

func (u *unionFind) find(x int) int {
	for u.parent[x] != x {
		u.parent[x] = u.parent[u.parent[x]]
		x = u.parent[x]
	}
	return x
}

func (u *unionFind) union(x, y int) {
	rx, ry := u.find(x), u.find(y)
	switch {
	case rx == ry:
	case rx < ry:
		u.parent[ry] = rx
	default:
		u.parent[rx] = ry
	}
}
