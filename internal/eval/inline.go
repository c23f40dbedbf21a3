package eval

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/truth"
)

// InlineVerify counts what the inline token check did with the response
// scored (RunOptions.InlineVerify): the gateway asked the mint registry
// (docs/verify.md) about every API request carrying a token before
// serving it, and refused it unless the verdict allowed it.
type InlineVerify struct {
	// Checked counts the gateway requests carrying a token id.
	Checked int `json:"checked"`
	// Allowed without a registered mint: graced (issued within the
	// grace skew) or uncovered (possibly minted before coverage began).
	Graced    int `json:"graced"`
	Uncovered int `json:"uncovered"`
	// Refused counts the refused requests, RefusedAttack those of a
	// scenario's attack (its malicious events) and RefusedBenign every
	// other one: the false refusals, of which RefusedHardBenign belong to
	// a hard-benign entry (by event id, principal or source address).
	Refused           int `json:"refused"`
	RefusedAttack     int `json:"refused_attack"`
	RefusedBenign     int `json:"refused_benign"`
	RefusedHardBenign int `json:"refused_hard_benign"`
	// ByVerdict counts the refusals by verdict; BenignByVerdict the false
	// ones; HardBenign names the entries among the false refusals.
	ByVerdict       map[string]int `json:"by_verdict"`
	BenignByVerdict map[string]int `json:"benign_by_verdict,omitempty"`
	HardBenign      []string       `json:"hard_benign,omitempty"`
}

// ContainInlineVerify is the Containment kind of a refusal by the inline
// check (its target the token's signing key, else the token).
const ContainInlineVerify = "inline_verify"

// inlineChecker is the gateway's inline check in a scored run: a mint
// registry filled, in stream order, from the stream's own mints and key
// inventory — so a mint the issuer's log shipper holds back is unknown
// until it arrives, as in a real deployment fed by the auth.token stream
// — and asked about each gateway request at that request's event time.
// It never reads the ground truth to decide; the attributor only scores.
type inlineChecker struct {
	reg       *mint.Registry
	at        *attributor
	t         *truth.Truth
	nextCheck time.Time // grace re-checks, every minute of event time
	nextSweep time.Time // expiry sweep, every hour of event time
	score     InlineVerify
}

func newInlineChecker(cfg config.Config, t *truth.Truth) *inlineChecker {
	if t == nil {
		t = &truth.Truth{}
	}
	tp, v := cfg.Detectors.TokenProvenance, cfg.Verify
	reg := mint.New(mint.Options{MaxLifetime: tp.MaxLifetime.D(), ClockSkew: tp.ClockSkew.D(),
		Grace: mint.Grace{Skew: v.GraceSkew.D(), PerSource: v.GracePerSource, PerKey: v.GracePerKey}, RequireUser: v.RequireUser})
	return &inlineChecker{reg: reg, at: newAttributor(t), t: t,
		score: InlineVerify{ByVerdict: map[string]int{}, BenignByVerdict: map[string]int{}}}
}

// Check folds a mint or key inventory event into the registry, or judges
// a gateway request carrying a token: it returns the refusal as a
// Containment and true when the verdict refuses it.
func (c *inlineChecker) Check(ev *event.Event) (Containment, bool) {
	switch ev.Dataset {
	case event.DatasetToken, event.DatasetKeys:
		c.reg.Observe(ev)
		return Containment{}, false
	case event.DatasetGateway:
	default:
		return Containment{}, false
	}
	if ev.Token.ID == "" || ev.Time.IsZero() {
		return Containment{}, false
	}
	if !ev.Time.Before(c.nextCheck) {
		c.reg.Recheck(ev.Time)
		c.nextCheck = ev.Time.Add(time.Minute)
	}
	if !ev.Time.Before(c.nextSweep) {
		c.reg.Sweep(ev.Time)
		c.nextSweep = ev.Time.Add(time.Hour)
	}
	// The user the request is served for is the one its token is
	// presented for (a gateway reads it from the JWT's sub).
	q := mint.Query{TokenID: ev.Token.ID, KeyID: ev.Token.KeyID, IssuedAt: ev.Token.IssuedAt, User: ev.User.ID,
		Country: ev.Source.Country, UserAgent: ev.UserAgent, Now: ev.Time}
	if ip := ev.Source.IP.Unmap(); ip.IsValid() {
		q.Source = ip.String()
	}
	a := c.reg.Verify(q)
	s := &c.score
	s.Checked++
	switch a.Verdict {
	case mint.Graced:
		s.Graced++
	case mint.Uncovered:
		s.Uncovered++
	}
	if a.Allow {
		return Containment{}, false
	}
	v := string(a.Verdict)
	s.Refused++
	s.ByVerdict[v]++
	if ev.ID != "" && len(c.at.malByID[ev.ID]) > 0 {
		s.RefusedAttack++
	} else {
		s.RefusedBenign++
		s.BenignByVerdict[v]++
		if hb := c.hardBenign(ev); len(hb) > 0 {
			s.RefusedHardBenign++
			for _, i := range hb {
				if n := c.t.HardBenign[i].Name; !slices.Contains(s.HardBenign, n) {
					s.HardBenign = append(s.HardBenign, n)
				}
			}
		}
	}
	target := event.EntityKey{Kind: event.EntityToken, ID: ev.Token.ID}
	if ev.Token.KeyID != "" {
		target = event.EntityKey{Kind: event.EntitySigningKey, ID: ev.Token.KeyID}
	}
	return Containment{Time: ev.Time, Kind: ContainInlineVerify, Target: target}, true
}

// hardBenign returns the hard-benign entries ev belongs to: by its event
// id, principal or source address.
func (c *inlineChecker) hardBenign(ev *event.Event) []int {
	var hb []int
	if ev.ID != "" {
		hb = append(hb, c.at.benignByID[ev.ID]...)
	}
	if ev.User.ID != "" {
		hb = append(hb, c.at.benignEnt[event.EntityKey{Kind: event.EntityPrincipal, ID: ev.User.ID}]...)
	}
	if ip := ev.Source.IP.Unmap(); ip.IsValid() {
		hb = append(hb, c.at.benignEnt[event.EntityKey{Kind: event.EntitySource, ID: ip.String()}]...)
	}
	return hb
}

// result is the score, nil maps left out of the JSON.
func (c *inlineChecker) result() *InlineVerify {
	s := c.score
	slices.Sort(s.HardBenign)
	return &s
}

// writeLine writes iv as one line of the text scorecard, prefixed.
func (iv *InlineVerify) writeLine(w io.Writer, prefix string) {
	hb := ""
	if len(iv.HardBenign) > 0 {
		hb = " (" + strings.Join(iv.HardBenign, ", ") + ")"
	}
	fmt.Fprintf(w, "%sInline check: %d requests checked, %d refused (%d attack, %d benign, %d of them hard-benign%s); allowed without a mint: %d graced, %d uncovered",
		prefix, iv.Checked, iv.Refused, iv.RefusedAttack, iv.RefusedBenign, iv.RefusedHardBenign, hb, iv.Graced, iv.Uncovered)
	if len(iv.ByVerdict) > 0 {
		fmt.Fprintf(w, "; refused by verdict: %s", counts(iv.ByVerdict))
	}
	if len(iv.BenignByVerdict) > 0 {
		fmt.Fprintf(w, "; benign by verdict: %s", counts(iv.BenignByVerdict))
	}
	fmt.Fprintln(w)
}
