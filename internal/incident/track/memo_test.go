package track

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/store"
)

// rows reads every stored incident in full (detail included), without
// the wall times of their writes.
func rows(t *testing.T, s *store.Store) map[string]store.Incident {
	t.Helper()
	ins, err := s.ListIncidents(t.Context(), store.IncidentQuery{Limit: store.MaxListLimit})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]store.Incident{}
	for _, in := range ins {
		full, err := s.GetIncident(t.Context(), in.ID)
		if err != nil {
			t.Fatal(err)
		}
		full.Created, full.Updated = time.Time{}, time.Time{}
		out[in.ID] = full
	}
	return out
}

// TestMemoAcrossWriters: a keeper trusts what it remembers only while
// nothing else writes to the store. Two stores on one database (two
// processes) saving alternate batches, then one of them saving the rest
// while the other records an incident verdict between two of its
// batches, keep exactly the incidents (rows and detail) one store keeps
// saving the same batches with the same verdict.
func TestMemoAcrossWriters(t *testing.T) {
	all := scenario()
	r := newRand(7)
	for i := len(all) - 1; i > 0; i-- {
		j := int(r() % uint64(i+1))
		all[i], all[j] = all[j], all[i]
	}
	var batches [][]event.Alert
	for i := 0; i < len(all); i += 7 {
		batches = append(batches, all[i:min(i+7, len(all))])
	}
	one := open(t, t.TempDir())
	dir := t.TempDir()
	s1, s2 := open(t, dir), open(t, dir)
	half := len(batches) / 2
	verdictAt := t0.Add(time.Hour)
	for i, b := range batches {
		if err := one.SaveAlerts(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		w := s1
		if i < half && i%2 == 1 {
			w = s2
		}
		if err := w.SaveAlerts(t.Context(), b); err != nil {
			t.Fatal(err)
		}
		if i != half {
			continue
		}
		// The largest incident so far (it grows later) is contained,
		// through the other store, between two batches of s1.
		var big store.Incident
		for _, in := range rows(t, one) {
			if in.AlertCount > big.AlertCount || (in.AlertCount == big.AlertCount && in.ID < big.ID) {
				big = in
			}
		}
		v := store.IncidentVerdict{IncidentID: big.ID, State: store.IncidentContained, Verdict: store.VerdictTruePositive,
			By: "analyst", At: verdictAt}
		if _, err := one.SetIncidentVerdict(t.Context(), v); err != nil {
			t.Fatal(err)
		}
		if _, err := s2.SetIncidentVerdict(t.Context(), v); err != nil {
			t.Fatal(err)
		}
	}
	want := rows(t, one)
	var contained int
	for _, in := range want {
		if in.State == store.IncidentContained {
			contained++
		}
	}
	if contained != 1 {
		t.Fatalf("%d contained incidents in the reference store, want 1", contained)
	}
	if diff := cmp.Diff(want, rows(t, s1)); diff != "" {
		t.Errorf("incidents kept by two writers differ from one writer's (-one +two):\n%s", diff)
	}
}

// TestMemoAfterOtherWriter: what a keeper read in its last batch — an
// alert, an incident it left as it was — is read again once another
// writer changed it: an alert grown by another process and an incident's
// verdict recorded through it reach the keeper's next batch exactly as a
// single writer keeps them.
func TestMemoAfterOtherWriter(t *testing.T) {
	g := ghostKey("", t0, 20)
	grown := g[5]
	f := grown.Findings[0]
	f.Kind, f.Severity, f.Time = "token_never_minted", event.SeverityCritical, f.Time.Add(time.Minute)
	grown.Findings = append(slices.Clone(grown.Findings), f)
	grown.FindingCount, grown.Severity, grown.LastTime = 2, event.SeverityCritical, f.Time

	one := open(t, t.TempDir())
	dir := t.TempDir()
	s1, s2 := open(t, dir), open(t, dir)
	steps := []struct {
		by    *store.Store
		save  []event.Alert
		check bool // contain the incident after the step
	}{
		{s1, g[:10], false},
		{s1, g[:10], false}, // saved again unchanged: the incident is read, not rewritten
		{s2, []event.Alert{grown}, false},
		{s1, g[10:15], false},
		{s1, g[10:15], true}, // then contained through s2, which saves nothing
		{s1, g[15:], false},
	}
	for _, st := range steps {
		for _, s := range []*store.Store{one, st.by} {
			if err := s.SaveAlerts(t.Context(), st.save); err != nil {
				t.Fatal(err)
			}
		}
		if !st.check {
			continue
		}
		id, err := one.IncidentOfAlert(t.Context(), g[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		v := store.IncidentVerdict{IncidentID: id, State: store.IncidentContained, Verdict: store.VerdictTruePositive,
			By: "analyst", At: t0.Add(time.Hour)}
		for _, s := range []*store.Store{one, s2} {
			if _, err := s.SetIncidentVerdict(t.Context(), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := rows(t, one)
	if len(want) != 1 {
		t.Fatalf("%d incidents in the reference store, want 1", len(want))
	}
	for _, in := range want {
		if in.State != store.IncidentContained || in.AlertCount != 20 {
			t.Fatalf("reference incident %s: state %s, %d alerts; want contained, 20", in.ID, in.State, in.AlertCount)
		}
	}
	if diff := cmp.Diff(want, rows(t, s1)); diff != "" {
		t.Errorf("incidents kept after another writer differ from one writer's (-one +two):\n%s", diff)
	}
}

// failAfter is a keeper whose transaction fails after the Keeper's work
// succeeded (as when a later write of the batch fails): the transaction
// rolls back.
type failAfter struct {
	k    *Keeper
	fail bool
}

func (f *failAfter) AlertsSaved(ctx context.Context, tx *store.IncidentTx, alerts []event.Alert) error {
	if err := f.k.AlertsSaved(ctx, tx, alerts); err != nil {
		return err
	}
	if f.fail {
		f.fail = false
		return errors.New("a later write failed")
	}
	return nil
}

// TestMemoRolledBack: what a keeper read and wrote in a transaction that
// rolled back is not remembered — an alert grown in it, an incident put in
// it — and the next batch keeps exactly what a store that never saw the
// failed batch keeps.
func TestMemoRolledBack(t *testing.T) {
	g := ghostKey("", t0, 20)
	grown := g[5]
	f := grown.Findings[0]
	f.Kind, f.Severity, f.Time = "token_never_minted", event.SeverityCritical, f.Time.Add(time.Minute)
	grown.Findings = append(slices.Clone(grown.Findings), f)
	grown.FindingCount, grown.Severity, grown.LastTime = 2, event.SeverityCritical, f.Time

	one := open(t, t.TempDir())
	k := &failAfter{k: New(Options{})}
	s, err := store.Open(t.Context(), t.TempDir(), store.Options{Incidents: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	for _, b := range [][]event.Alert{g[:10], g[10:12]} {
		for _, w := range []*store.Store{one, s} {
			if err := w.SaveAlerts(t.Context(), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	k.fail = true
	if err := s.SaveAlerts(t.Context(), []event.Alert{grown, g[12]}); err == nil {
		t.Fatal("the failing batch was saved")
	}
	for _, w := range []*store.Store{one, s} {
		if err := w.SaveAlerts(t.Context(), g[13:]); err != nil {
			t.Fatal(err)
		}
	}
	want := rows(t, one)
	if len(want) != 1 {
		t.Fatalf("%d incidents in the reference store, want 1", len(want))
	}
	if diff := cmp.Diff(want, rows(t, s)); diff != "" {
		t.Errorf("incidents kept after a rolled-back batch differ (-never saw it +rolled back):\n%s", diff)
	}
}

// citationProbe is a keeper that, in each transaction, asks its view for
// the citations of random references and stores random citations —
// references asked before and found absent among them — and checks every
// answer against the store read directly; some transactions roll back.
type citationProbe struct {
	t     *testing.T
	k     *Keeper
	r     func() uint64
	asked int // references the view answered
	fail  bool
	// stored is what the citations table holds after the last committed
	// transaction: the first citation put of each reference.
	stored map[string]event.Citation
}

func (p *citationProbe) AlertsSaved(ctx context.Context, stx *store.IncidentTx, _ []event.Alert) error {
	p.k.mu.Lock()
	defer p.k.mu.Unlock()
	v := p.k.begin(stx)
	ref := func() string { return "ref-" + strconv.Itoa(int(p.r()%40)) }
	stored := maps.Clone(p.stored)
	for range 8 {
		if p.r()%2 == 0 {
			var refs []string
			for range 1 + p.r()%12 {
				refs = append(refs, ref())
			}
			got, err := v.Citations(ctx, refs)
			if err != nil {
				return err
			}
			want, err := stx.Citations(ctx, refs)
			if err != nil {
				return err
			}
			if diff := cmp.Diff(want, got); diff != "" {
				p.t.Errorf("citations of %v (-store +view):\n%s", refs, diff)
			}
			p.asked += len(refs)
			continue
		}
		var cs []event.Citation
		for range p.r() % 4 {
			cs = append(cs, event.Citation{Ref: ref(), Success: true, Principal: "p" + strconv.Itoa(int(p.r()%3)), Source: "10.0.0.1"})
		}
		if err := v.PutCitations(ctx, cs); err != nil {
			return err
		}
		for _, c := range cs {
			if _, ok := stored[c.Ref]; !ok {
				stored[c.Ref] = c
			}
		}
	}
	var all []string
	for i := range 40 {
		all = append(all, "ref-"+strconv.Itoa(i))
	}
	got, err := stx.Citations(ctx, all)
	if err != nil {
		return err
	}
	if diff := cmp.Diff(stored, got, cmpopts.EquateEmpty()); diff != "" {
		p.t.Errorf("citations stored (-first put +table):\n%s", diff)
	}
	if p.fail {
		return errors.New("rolled back")
	}
	p.stored = stored
	p.k.pending = v
	return nil
}

// TestViewCitationsAbsent: a reference the keeper found without a
// citation is answered absent from memory only until a citation of it is
// stored — in the same transaction or a later one — and not past a
// transaction that rolled back; a citation left unwritten because its
// reference is known stored leaves the table as writing it would.
func TestViewCitationsAbsent(t *testing.T) {
	p := &citationProbe{t: t, k: New(Options{}), r: newRand(3), stored: map[string]event.Citation{}}
	s, err := store.Open(t.Context(), t.TempDir(), store.Options{Incidents: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	a := ghostKey("", t0, 1)
	for i := range 60 {
		p.fail = i%7 == 3
		err := s.SaveAlerts(t.Context(), a)
		if (err != nil) != p.fail {
			t.Fatalf("transaction %d: %v", i, err)
		}
	}
	if p.asked == 0 {
		t.Fatal("nothing asked")
	}
}
