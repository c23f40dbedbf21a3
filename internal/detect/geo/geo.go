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
// Staff (roster kind employee or contractor with identity.country) acting
// from another country is reported once per principal, country and day.
// There is no travel feed in the contract yet, so travel is not excused.
package geo

import (
	"fmt"
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

	ScoreNewCountry     = 35 // low: travel is common; it counts with other findings
	ScoreHostingNetwork = 55
	ScoreStaffAbroad    = 60
)

const day = 24 * time.Hour

// Options configure the detector.
type Options struct {
	// HostingMarkers mark hosting networks by AS organisation name
	// (case-insensitive substrings; empty → no hosting findings). The
	// maintained default list is config.DefaultHostingMarkers.
	HostingMarkers []string
}

// Detector is the principal-geo detector.
type Detector struct {
	hosting []string
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	d := &Detector{}
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
	if ev.Dataset != event.DatasetRoster && ev.Source.Country == "" && ev.Source.ASOrg == "" {
		return event.EntityKey{}, false // not located: neither evidence for nor against
	}
	return ev.PrincipalKey()
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, customers: map[uint64]customer{}, staff: map[string]*staffer{}, hostingVerdict: map[string]bool{}}
}

// customer is 16 bytes: countries seen (two ASCII letters each, 0 = empty)
// and the day of the last hosting report.
type customer struct {
	countries  [4]uint16
	hostingDay uint32
	full       bool // four countries seen: no more new-country findings
}

type staffer struct {
	kind    string
	country string
	roles   []string
	// reported: country → day of the last report
	reported map[string]uint32
}

type shard struct {
	d              *Detector
	customers      map[uint64]customer // by hash of the principal id
	staff          map[string]*staffer
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
	case "", "customer", "service":
		delete(s.staff, id)
		return
	}
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
