package geo

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
)

// Workloads: identities the roster names kind "service" — back-end
// services and partners' integrations holding client credentials — run
// from a handful of networks (a cloud account, a partner's data centre)
// and do not travel. Their networks are learnt for WorkloadLearning
// (a day) from the roster entry (or the first located event);
// afterwards a network (autonomous
// system, or the country when the event has no AS) outside that set is a
// finding each day it is used, until it has been used on WorkloadAdopt
// (3) days and becomes one of the workload's own. The finding is medium
// (ScoreWorkloadNetwork): a workload moving is an operational change as
// often as a stolen secret, so it alerts together with another line of
// evidence (volume, enumeration, hours), not alone.
const (
	KindWorkloadNetwork  = "workload_new_network"
	ScoreWorkloadNetwork = 60

	WorkloadLearning = 24 * time.Hour
	WorkloadAdopt    = 3
	workloadMaxNets  = 8
	workloadMaxCands = 4
)

type workloadCand struct {
	net     uint32
	days    int
	lastDay uint32
}

type workload struct {
	first time.Time
	nets  []uint32 // known networks
	names []string // their descriptions, for explanations
	cands []workloadCand
}

// networkKey is the AS number, or the country (high bit set) when the
// event has no AS; 0 when it has neither.
func networkKey(ev *event.Event) uint32 {
	if ev.Source.ASN != 0 {
		return ev.Source.ASN &^ (1 << 31)
	}
	if cc := packCountry(ev.Source.Country); cc != 0 {
		return 1<<31 | uint32(cc)
	}
	return 0
}

func describeNetwork(ev *event.Event) string {
	var b strings.Builder
	if ev.Source.ASN != 0 {
		fmt.Fprintf(&b, "AS%d", ev.Source.ASN)
		if ev.Source.ASOrg != "" {
			b.WriteString(" " + ev.Source.ASOrg)
		}
	}
	if ev.Source.Country != "" {
		if b.Len() > 0 {
			b.WriteString(" in ")
		}
		b.WriteString(strings.ToUpper(ev.Source.Country))
	}
	return b.String()
}

func (s *shard) workloadAccess(c *engine.Context, key event.EntityKey, w *workload, ev *event.Event) {
	n := networkKey(ev)
	if n == 0 || slices.Contains(w.nets, n) {
		return
	}
	if w.first.IsZero() {
		w.first = ev.Time
	}
	if ev.Time.Sub(w.first) < WorkloadLearning {
		w.learn(n, describeNetwork(ev))
		return
	}
	dayNo := uint32(ev.Time.Unix() / int64(day/time.Second))
	i := slices.IndexFunc(w.cands, func(c workloadCand) bool { return c.net == n })
	if i < 0 {
		if len(w.cands) == workloadMaxCands {
			w.cands = w.cands[1:] // forget the oldest candidate
		}
		w.cands = append(w.cands, workloadCand{net: n})
		i = len(w.cands) - 1
	}
	cand := &w.cands[i]
	if cand.days > 0 && cand.lastDay == dayNo {
		return
	}
	cand.days++
	cand.lastDay = dayNo
	known := "only networks with no location (internal ones)"
	if len(w.names) > 0 {
		known = strings.Join(w.names, ", ")
	}
	days := cand.days
	if days >= WorkloadAdopt {
		w.cands = slices.Delete(w.cands, i, i+1)
		w.learn(n, describeNetwork(ev))
	}
	c.Emit(event.Finding{
		Kind:   KindWorkloadNetwork,
		Title:  "Service identity used from a network it does not run in",
		Entity: key,
		Time:   ev.Time,
		Score:  ScoreWorkloadNetwork,
		Explanation: fmt.Sprintf("%s, a service identity per the roster, performed %s from %s (%s) at %s; it runs from %s (learnt since %s), and this network is on its %s day of use.",
			key.ID, ev.Action, ev.Source.IP, describeNetwork(ev), ev.Time.UTC().Format(time.RFC3339), known,
			w.first.UTC().Format("2006-01-02"), ordinal(days)),
		Evidence: []string{c.Ref(ev)},
		Figures:  []event.Figure{{Name: "known_networks", Value: float64(len(w.nets))}, {Name: "days_of_use", Value: float64(days)}},
	})
}

func (w *workload) learn(n uint32, name string) {
	if len(w.nets) >= workloadMaxNets {
		return
	}
	w.nets = append(w.nets, n)
	if name == "" {
		name = "an unnamed network"
	}
	w.names = append(w.names, name)
}

func ordinal(n int) string {
	switch n {
	case 1:
		return "first"
	case 2:
		return "second"
	case 3:
		return "third"
	}
	return fmt.Sprintf("%dth", n)
}
