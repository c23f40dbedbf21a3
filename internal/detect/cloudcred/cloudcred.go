// Package cloudcred detects a cloud workload's temporary credentials used
// away from the workload: an EC2 instance's or ECS task's role credentials
// taken from the instance metadata service (or the task's credential
// endpoint) and used somewhere else — GuardDuty's
// InstanceCredentialExfiltration.OutsideAWS and .InsideAWS, ATT&CK
// T1552.005 then T1078.004.
//
// # What it judges
//
// Activity whose token.id is an STS temporary access key (ASIA…) of a role
// session named after a workload: an EC2 instance id (i- and 8 or 17 hex
// digits) or an ECS task id (32 hex digits). The session name is the last
// part of an assumed-role ARN in user.id (arn:aws:sts::ACCOUNT:assumed-
// role/ROLE/SESSION, as the CloudTrail input maps userIdentity.arn), else
// user.name. Only the workload itself ever holds these credentials — AWS
// delivers them to the instance or task and rotates them every few hours —
// so where they are used says who holds them, and no baseline is needed.
// IAM users' long-term keys (AKIA…) and role sessions named after people
// (SSO, console, CLI sessions) are not judged: people carry those around.
// Uses without a source address (an AWS service acting for the role:
// CloudTrail's sourceIPAddress "ec2.amazonaws.com", "AWS Internal") and
// from private addresses (a VPC endpoint inside the workload's own VPC)
// are neither evidence for nor against.
//
// State is keyed by the role session (user.id), so it spans the session's
// key rotations; findings are about the access key used (token entity —
// revoking it is the containment) with the source related.
//
// # Findings
//
//   - KindOutside, from the first use on, without history: the source is
//     outside the provider's networks — its address is in none of the
//     provider's published prefixes (Options.Ranges) and its AS (when the
//     event carries source.as.number) is none of the provider's
//     (Options.ProviderASNs). An address in the ranges, or of a provider
//     AS, is inside (a stale ranges file errs towards inside).
//   - KindOtherNetwork: the session's first use from inside the provider
//     fixes the workload's network — the provider region of its address
//     when the ranges name one, else its AS, else its /24 or /64. A later
//     use from inside the provider but from another network is a finding:
//     the instance's egress does not move between regions or networks.
//
// Both are Immediate: they alert on their own. Each (access key, network)
// pair is reported once; after MaxReports reports a session is not
// reported again (its alert is open). Sessions unused for Options.Idle are
// forgotten.
//
// # What it cannot see
//
// A credential used through a VPC endpoint of another account shows a
// private address and is not judged (GuardDuty compares the endpoint's
// account, which CloudTrail's vpcEndpointId does not give haechi). An
// attacker inside the same region of the provider as the workload, when
// the ranges file is current and the events carry no AS, is on the same
// "network" at this granularity.
package cloudcred

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/snap"
)

// Name is the detector's stable name.
const Name = "cloud_credential"

// Finding kinds.
const (
	KindOutside      = "cloud_credential_outside_provider"
	KindOtherNetwork = "cloud_credential_other_network"
)

// Scores: a workload's credential used outside the provider is as certain
// as haechi gets without a canary; from another network inside it, almost.
const (
	ScoreOutside      = 95
	ScoreOtherNetwork = 90
)

// MaxReports bounds the (access key, network) pairs reported per session.
const MaxReports = 16

// DefaultProviderASNs are AWS's main autonomous systems: AS16509
// (AMAZON-02, EC2 and most services) and AS14618 (AMAZON-AES, us-east-1).
var DefaultProviderASNs = []uint32{16509, 14618}

// Tags of every finding: ATT&CK T1552.005 (cloud instance metadata API)
// and T1078.004 (valid cloud accounts).
var tags = []string{"attack.t1552.005", "attack.t1078.004"}

// Options configure the detector.
type Options struct {
	// Ranges are the provider's address prefixes (DefaultRanges or
	// LoadRanges); nil leaves only ProviderASNs to tell inside from
	// outside.
	Ranges *Ranges
	// ProviderASNs are the provider's AS numbers, judged when events carry
	// source.as.number (GeoIP enrichment or upstream).
	ProviderASNs []uint32
	// Idle is how long an unused session is remembered (default 7 days).
	Idle time.Duration
	// Provider names the provider in explanations (default "AWS").
	Provider string
}

// Detector is the cloud-credential detector.
type Detector struct {
	opts Options
	asns map[uint32]bool
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	if opts.Idle <= 0 {
		opts.Idle = 7 * 24 * time.Hour
	}
	if opts.Provider == "" {
		opts.Provider = "AWS"
	}
	d := &Detector{opts: opts, asns: map[uint32]bool{}}
	for _, a := range opts.ProviderASNs {
		if a != 0 {
			d.asns[a] = true
		}
	}
	return d
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity with a source address and an
// ASIA… access key of a workload's role session, keyed by the session.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if !strings.HasPrefix(ev.Token.ID, "ASIA") || !ev.Source.IP.IsValid() || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	if _, ok := WorkloadSession(ev); !ok {
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}, true
}

// WorkloadSession returns the event's role session name and whether it
// names a workload: an EC2 instance id or an ECS task id.
func WorkloadSession(ev *event.Event) (string, bool) {
	name := ev.User.Name
	if k := strings.Index(ev.User.ID, ":assumed-role/"); k >= 0 {
		rest := ev.User.ID[k+len(":assumed-role/"):]
		if j := strings.LastIndexByte(rest, '/'); j >= 0 {
			name = rest[j+1:]
		}
	}
	return name, isInstanceID(name) || isTaskID(name)
}

// isInstanceID: "i-" and 8 or 17 lower-case hex digits.
func isInstanceID(s string) bool {
	if !strings.HasPrefix(s, "i-") {
		return false
	}
	h := s[2:]
	return (len(h) == 8 || len(h) == 17) && isHex(h)
}

// isTaskID: an ECS task id, 32 lower-case hex digits.
func isTaskID(s string) bool { return len(s) == 32 && isHex(s) }

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, sessions: map[string]*session{}}
}

// class of a source address.
type class uint8

const (
	classUnknown class = iota // no ranges, no AS: cannot say
	classPrivate              // a private or shared address: the VPC's own
	classInside
	classOutside
)

// place is where a use came from, at the granularities compared.
type place struct {
	region string // provider region, when the ranges name one
	asn    uint32
	prefix string // the /24 or /64
	v6     bool
}

func (p place) network() string {
	switch {
	case p.region != "":
		return p.region
	case p.asn != 0:
		return "AS" + strconv.FormatUint(uint64(p.asn), 10)
	}
	return p.prefix
}

// same reports whether two uses inside the provider came from one
// network, comparing the finest granularity both have.
func same(a, b place) bool {
	switch {
	case a.region != "" && b.region != "":
		return a.region == b.region
	case a.asn != 0 && b.asn != 0:
		return a.asn == b.asn
	}
	return a.prefix == b.prefix
}

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

func (d *Detector) classify(src event.Source) (class, place, string) {
	a := src.IP.Unmap()
	if a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || !a.IsGlobalUnicast() || cgnat.Contains(a) {
		return classPrivate, place{}, ""
	}
	bits := 24
	if a.Is6() {
		bits = 64
	}
	pfx, _ := a.Prefix(bits)
	pl := place{asn: src.ASN, prefix: pfx.String(), v6: a.Is6()}
	if region, ok := d.opts.Ranges.Lookup(a); ok {
		pl.region = region
		if region == "" {
			pl.region = d.opts.Provider
		}
		return classInside, pl, fmt.Sprintf("in %s's published ranges (%s), region %s", d.opts.Provider, d.opts.Ranges.Source(), pl.region)
	}
	if src.ASN != 0 && d.asns[src.ASN] {
		return classInside, pl, fmt.Sprintf("AS%d is %s's", src.ASN, d.opts.Provider)
	}
	var why []string
	if d.opts.Ranges.Len() > 0 {
		why = append(why, fmt.Sprintf("in none of the %d prefixes of %s", d.opts.Ranges.Len(), d.opts.Ranges.Source()))
	}
	if src.ASN != 0 {
		as := "AS" + strconv.FormatUint(uint64(src.ASN), 10)
		if src.ASOrg != "" {
			as += " " + src.ASOrg
		}
		why = append(why, as+" is none of "+d.opts.Provider+"'s AS numbers")
	}
	if len(why) == 0 {
		return classUnknown, pl, ""
	}
	return classOutside, pl, strings.Join(why, "; ")
}

type session struct {
	home    [2]*place // the workload's network per address family (0 IPv4, 1 IPv6)
	homeRef string
	homeAt  time.Time
	last    time.Time
	// reported are the "key network" pairs reported.
	reported []string
}

type shard struct {
	d         *Detector
	sessions  map[string]*session
	lastSweep time.Time
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	cls, pl, why := s.d.classify(ev.Source)
	if cls == classPrivate {
		return
	}
	se := s.sessions[key.ID]
	if se == nil {
		se = &session{}
		s.sessions[key.ID] = se
	}
	if ev.Time.After(se.last) {
		se.last = ev.Time
	}
	fam := 0
	if pl.v6 {
		fam = 1
	}
	if cls == classOutside {
		s.report(c, key, se, ev, KindOutside, pl, why)
		return
	}
	home := se.home[fam]
	if home == nil {
		home = se.home[1-fam]
		if home != nil && home.region == "" && (home.asn == 0 || pl.asn == 0) {
			home = nil // prefixes of two families cannot be compared
		}
	}
	if home == nil {
		p := pl
		se.home[fam] = &p
		if se.homeRef == "" {
			se.homeRef, se.homeAt = c.Ref(ev), ev.Time
		}
		return
	}
	if same(*home, pl) {
		return
	}
	s.report(c, key, se, ev, KindOtherNetwork, pl, fmt.Sprintf("the workload's first use (%s, %s) was from %s", se.homeRef,
		se.homeAt.UTC().Format(time.RFC3339), describe(*home, s.d.opts.Provider)))
}

func describe(p place, provider string) string {
	switch {
	case p.region != "":
		return provider + " " + p.region
	case p.asn != 0:
		return fmt.Sprintf("AS%d", p.asn)
	}
	return p.prefix
}

func (s *shard) report(c *engine.Context, key event.EntityKey, se *session, ev *event.Event, kind string, pl place, why string) {
	id := ev.Token.ID + " " + pl.network()
	if len(se.reported) >= MaxReports || slices.Contains(se.reported, id) {
		return
	}
	se.reported = append(se.reported, id)
	name, _ := WorkloadSession(ev)
	workload := "EC2 instance " + name
	if isTaskID(name) {
		workload = "ECS task " + name
	}
	where := ev.Source.IP.String()
	if d := describe(pl, s.d.opts.Provider); kind == KindOtherNetwork || pl.asn != 0 {
		where += " (" + d + ")"
	}
	if ev.Source.Country != "" {
		where += " in " + ev.Source.Country
	}
	action := ev.Action
	if ev.Provider != "" {
		action = ev.Provider + " " + ev.Action
	}
	f := event.Finding{
		Kind:      kind,
		Entity:    event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID},
		Time:      ev.Time,
		Immediate: true,
		Tags:      tags,
		Evidence:  []string{c.Ref(ev)},
		Related:   []event.EntityKey{{Kind: event.EntitySource, ID: ev.Source.IP.String()}, {Kind: event.EntityPrincipal, ID: key.ID}},
	}
	at := ev.Time.UTC().Format(time.RFC3339)
	switch kind {
	case KindOutside:
		f.Title = "Workload credentials used outside " + s.d.opts.Provider
		f.Score = ScoreOutside
		f.Explanation = fmt.Sprintf("Temporary access key %s of %s (role session %s) was used from %s at %s for %s; that address is outside %s: %s. A workload's role credentials are only ever used by the workload, inside %s; used from outside they were taken from it.",
			ev.Token.ID, workload, key.ID, where, at, action, s.d.opts.Provider, why, s.d.opts.Provider)
	case KindOtherNetwork:
		f.Title = "Workload credentials used from another network"
		f.Score = ScoreOtherNetwork
		f.Explanation = fmt.Sprintf("Temporary access key %s of %s (role session %s) was used from %s at %s for %s; %s. A workload's credentials are used from the workload's own network; another network means another machine holds them.",
			ev.Token.ID, workload, key.ID, where, at, action, why)
		if se.homeRef != "" {
			f.Evidence = []string{se.homeRef, c.Ref(ev)}
		}
	}
	c.Emit(f)
}

// Advance implements engine.Advancer: idle sessions are forgotten.
func (s *shard) Advance(_ *engine.Context, wm time.Time) {
	if !wm.Before(engine.EndOfTime) || wm.Sub(s.lastSweep) < time.Hour {
		return
	}
	s.lastSweep = wm
	for id, se := range s.sessions {
		if wm.Sub(se.last) > s.d.opts.Idle {
			delete(s.sessions, id)
		}
	}
}

const snapshotVersion = 1

// AppendSnapshot implements engine.Snapshotter.
func (s *shard) AppendSnapshot(w *snap.Writer) {
	w.Byte(snapshotVersion)
	w.Time(s.lastSweep)
	w.Uint(uint64(len(s.sessions)))
	for _, id := range slices.Sorted(maps.Keys(s.sessions)) {
		se := s.sessions[id]
		w.String(id)
		for _, h := range se.home {
			w.Bool(h != nil)
			if h != nil {
				w.String(h.region)
				w.Uint(uint64(h.asn))
				w.String(h.prefix)
				w.Bool(h.v6)
			}
		}
		w.String(se.homeRef)
		w.Time(se.homeAt)
		w.Time(se.last)
		w.Uint(uint64(len(se.reported)))
		for _, r := range se.reported {
			w.String(r)
		}
	}
}

// Restore implements engine.Snapshotter.
func (s *shard) Restore(r *snap.Reader) error {
	if v := r.Byte(); r.Err() == nil && v != snapshotVersion {
		return fmt.Errorf("%s: snapshot version %d, want %d", Name, v, snapshotVersion)
	}
	lastSweep := r.Time()
	sessions := map[string]*session{}
	for range r.Count(8) {
		id := r.String()
		se := &session{}
		for i := range se.home {
			if r.Bool() {
				h := &place{region: r.String()}
				asn := r.Uint()
				if asn > 1<<32-1 {
					r.Fail("AS number")
				}
				h.asn = uint32(asn)
				h.prefix = r.String()
				h.v6 = r.Bool()
				se.home[i] = h
			}
		}
		se.homeRef = r.String()
		se.homeAt = r.Time()
		se.last = r.Time()
		for range r.Count(1) {
			se.reported = append(se.reported, r.String())
		}
		sessions[id] = se
	}
	if err := r.End(); err != nil {
		return fmt.Errorf("%s: %w", Name, err)
	}
	s.sessions, s.lastSweep = sessions, lastSweep
	return nil
}
