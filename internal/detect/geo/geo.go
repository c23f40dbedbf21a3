// Package geo judges where a principal acts from: a customer using a
// hosting network, a customer appearing in a country it has never used,
// and staff acting from outside the country the roster gives them.
//
// Location is what the event carries in source.geo.country_iso_code and
// source.as.* — from upstream enrichment or haechi's MaxMind lookup. An
// event without them is neither evidence for nor against; with no
// enrichment at all the detector stays quiet (the pipeline says so at
// start-up and in /metrics).
//
// State is keyed by principal. For customers (no user.roles, not named
// staff by the roster) it keeps up to four countries seen, in 16 bytes per
// principal keyed by a 64-bit hash of the id, so tens of millions of
// customers fit in memory. The first located event of a principal only
// records its country (cold start: a new customer's first login is not an
// alert); a later event from a country the principal has never used is a
// new-country finding, at most one per principal and country.
//
// Hosting networks are recognised by the AS organisation name against a
// configurable list of markers (cloud and VPS providers), since customers
// reach a shop from homes and phones, not from data centres. Reported once
// per principal per day, about the source address: one hosting server
// acting as thousands of customers is one alert about the server (the
// alert stage groups by entity), not thousands about customers.
//
// Service identities (roster kind service) are judged by the networks they
// run from (workload.go).
//
// Staff (roster kind employee or contractor with identity.country) acting
// from another country is reported once per principal, country and day.
// There is no travel feed in the contract yet, so travel is not excused.
//
// New networks: the autonomous systems a principal has used are kept as
// four 16-bit fingerprints, with the same cold start as countries. A
// principal acting from a network it has never used (after its first) is a
// low-score finding (ScoreNewNetwork, below the alert threshold): people
// move between home broadband, mobile carriers and office networks, so it
// only adds context to an alert raised by something else about the same
// source. After four networks the principal is considered roaming and no
// more are reported.
//
// Impossible travel: for every principal the last located event
// (source.geo.location, from upstream or a MaxMind City database) is kept.
// When a later located event is farther than MinTravel away, the speed
// needed is computed from the great-circle distance less twice the
// geolocation error allowed (LocationError, per point) — geolocation of an
// address is often only a city or a country centroid — and reported when
// it exceeds MaxSpeed (default 1000 km/h, faster than an airliner). Two
// events in the same autonomous system are never judged: carriers route
// mobile users through gateways far from them, so a move inside one
// carrier's network says nothing about the person. Reported at most once
// per principal per day, about the later event's source address for
// customers (like new countries) and about the principal for staff.
package geo

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Name is the detector's stable name.
const Name = "principal_geo"

// Finding kinds and scores.
const (
	KindNewCountry     = "new_country"
	KindHostingNetwork = "hosting_network"
	KindStaffAbroad    = "staff_outside_country"
	KindNewNetwork     = "new_network"
	KindTravel         = "impossible_travel"

	ScoreNewCountry     = 35 // low: travel is common; it counts with other findings
	ScoreHostingNetwork = 55
	ScoreStaffAbroad    = 60
	ScoreNewNetwork     = 25 // context only: networks change every day
	ScoreTravel         = 60
)

const day = 24 * time.Hour

// Options configure the detector.
type Options struct {
	// HostingMarkers mark hosting networks by AS organisation name
	// (case-insensitive substrings; empty → no hosting findings). The
	// maintained default list is config.DefaultHostingMarkers.
	HostingMarkers []string
	// MaxSpeed is the fastest plausible travel in km/h (default 1000).
	MaxSpeed float64
	// LocationError is the geolocation error allowed per located event,
	// in km (0: default 100; negative: none); twice it is subtracted from
	// every distance.
	LocationError float64
	// MinTravel is the shortest distance in km that is judged at all
	// (default 500), so neighbouring cities never count.
	MinTravel float64
}

func (o *Options) defaults() {
	if o.MaxSpeed <= 0 {
		o.MaxSpeed = 1000
	}
	if o.LocationError < 0 {
		o.LocationError = 0
	} else if o.LocationError == 0 {
		o.LocationError = 100
	}
	if o.MinTravel <= 0 {
		o.MinTravel = 500
	}
}

// Detector is the principal-geo detector.
type Detector struct {
	hosting []string
	opts    Options
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	opts.defaults()
	d := &Detector{opts: opts}
	for _, s := range opts.HostingMarkers {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			d.hosting = append(d.hosting, s)
		}
	}
	return d
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: roster events key on identity.id;
// located activity on user.id.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.Dataset != event.DatasetRoster && ev.Source.Country == "" && ev.Source.ASN == 0 && ev.Source.ASOrg == "" && !ev.Source.Located {
		return event.EntityKey{}, false // not located: neither evidence for nor against
	}
	return ev.PrincipalKey()
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, customers: map[uint64]customer{}, staff: map[string]*staffer{}, workloads: map[string]*workload{}, hostingVerdict: map[string]bool{}}
}

// customer is 48 bytes: countries seen (two ASCII letters each, 0 =
// empty), network fingerprints seen, the last location and the days of
// the last hosting and travel reports.
type customer struct {
	countries  [4]uint16
	nets       [4]uint16
	last       place
	hostingDay uint32
	travelDay  uint32
	full       bool // four countries seen: no more new-country findings
	netsFull   bool // four networks seen: roaming, no more new-network findings
}

// place is the last located event of a principal: 16 bytes.
type place struct {
	lat, lon float32
	at       uint32 // unix seconds; 0 = none yet
	asn      uint32
}

type staffer struct {
	kind    string
	country string
	roles   []string
	// reported: country → day of the last report
	reported  map[string]uint32
	nets      [4]uint16
	netsFull  bool
	last      place
	lastRef   string
	travelDay uint32
}

type shard struct {
	d              *Detector
	customers      map[uint64]customer // by hash of the principal id
	staff          map[string]*staffer
	workloads      map[string]*workload
	hostingVerdict map[string]bool
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	if ev.Dataset == event.DatasetRoster {
		s.roster(key.ID, ev)
		return
	}
	if st := s.staff[key.ID]; st != nil {
		s.staffAccess(c, key, st, ev)
		return
	}
	if w := s.workloads[key.ID]; w != nil {
		s.workloadAccess(c, key, w, ev)
		return
	}
	if len(ev.User.Roles) > 0 {
		return // staff the roster has not named: no customer rules apply
	}
	h := hash(key.ID)
	cu := s.customers[h] // a copy, written back when done
	defer func() { s.customers[h] = cu }()
	dayNo := uint32(ev.Time.Unix() / int64(day/time.Second))
	if org := ev.Source.ASOrg; org != "" && s.isHosting(org) && cu.hostingDay != dayNo {
		cu.hostingDay = dayNo
		entity := key
		if ev.Source.IP.IsValid() {
			entity = event.EntityKey{Kind: event.EntitySource, ID: ev.Source.IP.String()}
		}
		c.Emit(event.Finding{
			Kind:   KindHostingNetwork,
			Title:  "Customer account used from a hosting network",
			Entity: entity,
			Time:   ev.Time,
			Score:  ScoreHostingNetwork,
			Explanation: fmt.Sprintf("%s, in a hosting network (AS%d %s)%s, acted as customer %s at %s; customers reach the shop from homes and phones, not data centres.",
				ev.Source.IP, ev.Source.ASN, org, inCountry(ev.Source.Country), key.ID, ev.Time.UTC().Format(time.RFC3339)),
			Evidence: []string{c.Ref(ev)},
		})
	}
	cu.netsFull = s.newNetwork(c, &cu.nets, cu.netsFull, key, "", ev)
	s.travel(c, &cu.last, &cu.travelDay, key, "", ev, "")
	cc := packCountry(ev.Source.Country)
	if cc == 0 {
		return
	}
	empty := -1
	for i, v := range cu.countries {
		if v == cc {
			return
		}
		if v == 0 && empty < 0 {
			empty = i
		}
	}
	if empty < 0 {
		cu.full = true
		return
	}
	cu.countries[empty] = cc
	if empty == 0 || cu.full {
		return // cold start: the first country is the principal's own
	}
	// About the source: one address abroad acting as many customers is one
	// alert (grouped by entity), not one per customer; the customer is named.
	entity := key
	if ev.Source.IP.IsValid() {
		entity = event.EntityKey{Kind: event.EntitySource, ID: ev.Source.IP.String()}
	}
	c.Emit(event.Finding{
		Kind:   KindNewCountry,
		Title:  "Customer account used from a new country",
		Entity: entity,
		Time:   ev.Time,
		Score:  ScoreNewCountry,
		Explanation: fmt.Sprintf("Customer %s was used from %s (%s) at %s; it had only been used from %s before.",
			key.ID, ev.Source.Country, ev.Source.IP, ev.Time.UTC().Format(time.RFC3339), listCountries(cu.countries[:empty])),
		Evidence: []string{c.Ref(ev)},
	})
}

func (s *shard) roster(id string, ev *event.Event) {
	switch strings.ToLower(ev.Identity.Kind) {
	case "service":
		delete(s.staff, id)
		if s.workloads[id] == nil {
			// Learning starts when the roster names the workload: one that
			// ran only from unlocated (internal) networks since then and
			// then appears on the internet is exactly what to report.
			s.workloads[id] = &workload{first: ev.Time}
		}
		return
	case "", "customer":
		delete(s.staff, id)
		delete(s.workloads, id)
		return
	}
	delete(s.workloads, id)
	st := s.staff[id]
	if st == nil {
		st = &staffer{reported: map[string]uint32{}}
		s.staff[id] = st
	}
	st.kind = ev.Identity.Kind
	if ev.Identity.Country != "" {
		st.country = strings.ToUpper(ev.Identity.Country)
	}
	if len(ev.Identity.Roles) > 0 {
		st.roles = ev.Identity.Roles
	}
}

func (s *shard) staffAccess(c *engine.Context, key event.EntityKey, st *staffer, ev *event.Event) {
	st.netsFull = s.newNetwork(c, &st.nets, st.netsFull, key, st.kind, ev)
	if s.travel(c, &st.last, &st.travelDay, key, st.kind, ev, st.lastRef) && ev.Source.Located {
		st.lastRef = c.Ref(ev)
	}
	cc := strings.ToUpper(ev.Source.Country)
	if st.country == "" || cc == "" || cc == st.country {
		return
	}
	dayNo := uint32(ev.Time.Unix() / int64(day/time.Second))
	if d, ok := st.reported[cc]; ok && d == dayNo {
		return
	}
	st.reported[cc] = dayNo
	who := key.ID + " (" + st.kind
	if len(st.roles) > 0 {
		who += "; " + strings.Join(st.roles, ", ")
	}
	who += ")"
	c.Emit(event.Finding{
		Kind:   KindStaffAbroad,
		Title:  "Staff access from outside their country",
		Entity: key,
		Time:   ev.Time,
		Score:  ScoreStaffAbroad,
		Explanation: fmt.Sprintf("%s, based in %s per the roster, performed %s from %s in %s at %s, with no travel on record.",
			who, st.country, ev.Action, ev.Source.IP, cc, ev.Time.UTC().Format(time.RFC3339)),
		Evidence: []string{c.Ref(ev)},
	})
}

// newNetwork records the event's autonomous system among the principal's
// networks (four fingerprints) and reports one it has not used before,
// after the first (cold start). It returns whether the set is full.
func (s *shard) newNetwork(c *engine.Context, nets *[4]uint16, full bool, key event.EntityKey, staffKind string, ev *event.Event) bool {
	if ev.Source.ASN == 0 || full {
		return full
	}
	fp := fingerprint(ev.Source.ASN)
	empty := -1
	for i, v := range nets {
		if v == fp {
			return false
		}
		if v == 0 && empty < 0 {
			empty = i
		}
	}
	if empty < 0 {
		return true
	}
	nets[empty] = fp
	if empty == 0 {
		return false // cold start: the first network is the principal's own
	}
	org := ""
	if ev.Source.ASOrg != "" {
		org = " " + ev.Source.ASOrg
	}
	entity, who := about(key, staffKind, ev)
	c.Emit(event.Finding{
		Kind:   KindNewNetwork,
		Title:  "Principal used from a network it has not used before",
		Entity: entity,
		Time:   ev.Time,
		Score:  ScoreNewNetwork,
		Explanation: fmt.Sprintf("%s acted from AS%d%s (%s) at %s, a network it had not used before (network %d of at most 4 remembered).",
			who, ev.Source.ASN, org, ev.Source.IP, ev.Time.UTC().Format(time.RFC3339), empty+1),
		Evidence: []string{c.Ref(ev)},
	})
	return false
}

// fingerprint maps an AS number to a non-zero 16-bit value. Two networks
// sharing one can only hide a new-network finding.
func fingerprint(asn uint32) uint16 {
	h := uint32(asn) * 0x9e3779b1
	if f := uint16(h >> 16); f != 0 {
		return f
	}
	return 1
}

// travel compares the event's location with the principal's last one and
// reports a speed no traveller reaches; it then remembers the later of the
// two. It reports whether the event became the principal's last place.
func (s *shard) travel(c *engine.Context, last *place, reportedDay *uint32, key event.EntityKey, staffKind string, ev *event.Event, lastRef string) bool {
	if !ev.Source.Located {
		return false
	}
	at := uint32(max(ev.Time.Unix(), 1))
	cur := place{lat: float32(ev.Source.Lat), lon: float32(ev.Source.Lon), at: at, asn: ev.Source.ASN}
	prev := *last
	newer := prev.at == 0 || at >= prev.at
	if newer {
		*last = cur
	}
	if prev.at == 0 || prev.asn != 0 && prev.asn == cur.asn {
		return newer
	}
	o := s.d.opts
	km := haversine(float64(prev.lat), float64(prev.lon), float64(cur.lat), float64(cur.lon))
	if km < o.MinTravel {
		return newer
	}
	apart := km - 2*o.LocationError
	hours := math.Abs(float64(int64(at)-int64(prev.at))) / 3600
	speed := math.Inf(1)
	if hours > 0 {
		speed = apart / hours
	}
	if apart <= 0 || speed <= o.MaxSpeed {
		return newer
	}
	dayNo := at / uint32(day/time.Second)
	if *reportedDay == dayNo {
		return newer
	}
	*reportedDay = dayNo
	prevTime := time.Unix(int64(prev.at), 0).UTC()
	gap := time.Duration(math.Abs(float64(int64(at)-int64(prev.at)))) * time.Second
	needed := "at once"
	if hours > 0 {
		needed = fmt.Sprintf("at %.0f km/h", speed)
	}
	evidence := []string{c.Ref(ev)}
	if lastRef != "" {
		evidence = append([]string{lastRef}, evidence...)
	}
	entity, who := about(key, staffKind, ev)
	c.Emit(event.Finding{
		Kind:   KindTravel,
		Title:  "Impossible travel",
		Entity: entity,
		Time:   ev.Time,
		Score:  ScoreTravel,
		Explanation: fmt.Sprintf("%s acted from %s%s at %s, %.0f km from where it acted %s earlier (%s, %.2f,%.2f); even allowing %.0f km of geolocation error at each end, that needs travel %s, faster than the %.0f km/h limit.",
			who, ev.Source.IP, inCountry(ev.Source.Country), ev.Time.UTC().Format(time.RFC3339), km, gap, prevTime.Format(time.RFC3339),
			prev.lat, prev.lon, o.LocationError, needed, o.MaxSpeed),
		Evidence: evidence,
	})
	return newer
}

// about returns what a finding on the principal key is about and how the
// explanation names it: customers' findings are about the source address
// (one server acting as many customers is one alert), staff findings about
// the staff member.
func about(key event.EntityKey, staffKind string, ev *event.Event) (event.EntityKey, string) {
	if staffKind != "" {
		return key, "Staff member " + key.ID + " (" + staffKind + ")"
	}
	if ev.Source.IP.IsValid() {
		return event.EntityKey{Kind: event.EntitySource, ID: ev.Source.IP.String()}, "Customer " + key.ID
	}
	return key, "Customer " + key.ID
}

// haversine returns the great-circle distance in km between two points
// given in degrees.
func haversine(lat1, lon1, lat2, lon2 float64) float64 {
	const earthKm = 6371.0
	rad := math.Pi / 180
	dLat := (lat2 - lat1) * rad
	dLon := (lon2 - lon1) * rad
	a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthKm * math.Asin(math.Min(1, math.Sqrt(a)))
}

func (s *shard) isHosting(org string) bool {
	if v, ok := s.hostingVerdict[org]; ok {
		return v
	}
	if len(s.hostingVerdict) > 4096 {
		clear(s.hostingVerdict)
	}
	lower := strings.ToLower(org)
	v := false
	for _, m := range s.d.hosting {
		if strings.Contains(lower, m) {
			v = true
			break
		}
	}
	s.hostingVerdict[org] = v
	return v
}

// hash is FNV-1a 64: stable across processes, so state can be
// checkpointed. A collision merges two customers' country sets, which can
// only hide a new-country finding.
func hash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return h
}

func packCountry(cc string) uint16 {
	if len(cc) != 2 {
		return 0
	}
	a, b := cc[0]&^0x20, cc[1]&^0x20 // upper-case ASCII letters
	if a < 'A' || a > 'Z' || b < 'A' || b > 'Z' {
		return 0
	}
	return uint16(a)<<8 | uint16(b)
}

func listCountries(cs []uint16) string {
	var parts []string
	for _, c := range cs {
		if c != 0 {
			parts = append(parts, string([]byte{byte(c >> 8), byte(c)}))
		}
	}
	return strings.Join(parts, ", ")
}

func inCountry(cc string) string {
	if cc == "" {
		return ""
	}
	return " in " + cc
}
