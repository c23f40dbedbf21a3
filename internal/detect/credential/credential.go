// Package credential detects a credential used from a network it has never
// been used from: stolen API keys, cloud access keys and session
// credentials replayed by someone else — the cloud analogue of a token
// used in two places (GuardDuty's instance-credential exfiltration, for
// any log that names the credential).
//
// It judges activity that carries token.id (the credential: an AWS access
// key id from CloudTrail, an API key or session id from a mapped log) on
// datasets other than the gateway's and the token issuer's — gateway
// tokens are token_provenance's, with their mint records. State is keyed
// by the credential: the networks it has been used from (up to four; the
// network is the source's AS when known, else its /24 or /64), the first
// use and its evidence reference.
//
// The first network a credential is seen on is its own (cold start: a new
// credential's first use is not an alert). A use from another network is a
// finding about the credential — revoking it is the containment — naming
// the new source as related, so a playbook can block it too. A credential
// seen on four networks is roaming (a developer's key used from home,
// office and phone) and is no longer judged. Uses without a source address
// (an AWS service acting on the principal's behalf) are neither evidence
// for nor against. Credentials idle for longer than Idle are forgotten.
package credential

import (
	"fmt"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/netname"
)

// Name is the detector's stable name.
const Name = "credential_network"

// Kind is the finding kind.
const Kind = "credential_new_network"

// Score of a finding: a credential replayed from elsewhere is high.
const Score = 70

const maxNets = 4

// Options configure the detector.
type Options struct {
	// Idle is how long an unused credential is remembered (default 14 days).
	Idle time.Duration
}

// Detector is the credential-network detector.
type Detector struct {
	opts  Options
	names netname.Cache
}

var _ engine.Detector = (*Detector)(nil)

// New returns the detector.
func New(opts Options) *Detector {
	if opts.Idle <= 0 {
		opts.Idle = 14 * 24 * time.Hour
	}
	return &Detector{opts: opts}
}

// Name implements engine.Detector.
func (d *Detector) Name() string { return Name }

// Key implements engine.Detector: activity naming a credential, from a
// source address, outside the gateway and the token issuer.
func (d *Detector) Key(ev *event.Event) (event.EntityKey, bool) {
	if ev.Token.ID == "" || !ev.Source.IP.IsValid() || !ev.IsActivity() {
		return event.EntityKey{}, false
	}
	switch ev.Dataset {
	case event.DatasetGateway, event.DatasetToken:
		return event.EntityKey{}, false
	}
	return event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID}, true
}

// NewShard implements engine.Detector.
func (d *Detector) NewShard() engine.Shard {
	return &shard{d: d, creds: map[string]*cred{}}
}

type cred struct {
	nets      [maxNets]string
	n         int
	principal string
	first     time.Time
	firstRef  string
	uses      int
	last      time.Time
}

type shard struct {
	d         *Detector
	creds     map[string]*cred
	lastSweep time.Time
}

// Process implements engine.Shard.
func (s *shard) Process(c *engine.Context, key event.EntityKey, ev *event.Event) {
	cr := s.creds[key.ID]
	net := s.d.names.Network(ev.Source)
	if cr == nil {
		cr = &cred{principal: ev.User.ID, first: ev.Time, firstRef: c.Ref(ev)}
		cr.nets[0], cr.n = net, 1
		s.creds[key.ID] = cr
	}
	cr.uses++
	if ev.Time.After(cr.last) {
		cr.last = ev.Time
	}
	if cr.n > maxNets {
		return // roaming
	}
	for _, n := range cr.nets[:cr.n] {
		if n == net {
			return
		}
	}
	if cr.n == maxNets {
		cr.n++ // a fifth network: roaming, stop judging
		return
	}
	before := cr.nets[:cr.n]
	cr.nets[cr.n] = net
	cr.n++
	who := ""
	if cr.principal != "" {
		who = " (" + cr.principal + ")"
	}
	c.Emit(event.Finding{
		Kind:   Kind,
		Title:  "Credential used from a new network",
		Entity: key,
		Time:   ev.Time,
		Score:  Score,
		Explanation: fmt.Sprintf("Credential %s%s was used from %s (%s) at %s for %s; in %d earlier uses since %s it had only been used from %s. A credential replayed from elsewhere is how stolen keys are used.",
			key.ID, who, ev.Source.IP, net, ev.Time.UTC().Format(time.RFC3339), ev.Action, cr.uses-1,
			cr.first.UTC().Format(time.RFC3339), joinNets(before)),
		Evidence: []string{cr.firstRef, c.Ref(ev)},
		Related:  []event.EntityKey{{Kind: event.EntitySource, ID: ev.Source.IP.String()}},
	})
}

// Advance implements engine.Advancer: idle credentials are forgotten.
func (s *shard) Advance(_ *engine.Context, wm time.Time) {
	if !wm.Before(engine.EndOfTime) || wm.Sub(s.lastSweep) < time.Hour {
		return
	}
	s.lastSweep = wm
	for id, cr := range s.creds {
		if wm.Sub(cr.last) > s.d.opts.Idle {
			delete(s.creds, id)
		}
	}
}

func joinNets(nets []string) string {
	out := ""
	for i, n := range nets {
		if i > 0 {
			out += ", "
		}
		out += n
	}
	return out
}
