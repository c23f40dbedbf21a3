package kafka_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/kafka"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// immediateCut is where one process emits immediate findings: after the
// input up to line cut (inclusive), whose event time (the newest so far)
// is at.
type immediateCut struct {
	cut      int
	at       time.Time
	findings []event.Finding
}

// immediateCuts runs lines through one one-shard engine, one event per
// batch as a single serve feeds it, and finds, to the event-time second,
// where each immediate finding is emitted: at the end of every second of
// input it waits for the engine to have processed it (a checkpoint mark).
func immediateCuts(tb testing.TB, lines [][]byte, mk func() []engine.Detector) []immediateCut {
	tb.Helper()
	eng, err := engine.New(engine.Options{Detectors: mk(), Shards: 1, Lateness: lateness,
		InputName: func(uint32) string { return inputTopic }})
	if err != nil {
		tb.Fatal(err)
	}
	var (
		mu   sync.Mutex
		cond = sync.NewCond(&mu)
		imm  []event.Finding
		mark uint64
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for o := range eng.Output() {
			mu.Lock()
			for _, f := range o.Findings {
				if f.Immediate {
					imm = append(imm, f)
				}
			}
			if o.Snapshot != nil {
				mark = o.Snapshot.Mark
				cond.Broadcast()
			}
			mu.Unlock()
		}
	}()
	go func() { _ = eng.Run(context.Background()) }()
	ctx := context.Background()
	dec := decode.NewDecoder()
	var evs []event.Event
	var idx []int
	for i, l := range lines {
		var ev event.Event
		if err := dec.Decode(l, &ev); err == nil {
			ev.Line = uint32(i + 1)
			evs, idx = append(evs, ev), append(idx, i)
		}
	}
	var cuts []immediateCut
	var newest time.Time
	for j, ev := range evs {
		if err := eng.Submit(ctx, engine.Batch{Events: []event.Event{ev}}); err != nil {
			tb.Fatal(err)
		}
		if ev.Time.After(newest) {
			newest = ev.Time
		}
		if j+1 < len(evs) && evs[j+1].Time.Truncate(time.Second).Equal(ev.Time.Truncate(time.Second)) {
			continue // the second goes on
		}
		m := uint64(j + 1)
		if err := eng.Checkpoint(ctx, m); err != nil {
			tb.Fatal(err)
		}
		mu.Lock()
		for mark < m {
			cond.Wait()
		}
		if len(imm) > 0 {
			cuts = append(cuts, immediateCut{cut: idx[j], at: newest, findings: imm})
			imm = nil
		}
		mu.Unlock()
	}
	eng.Close()
	<-done
	return cuts
}

// immediateDelay is how late the cluster stored the alert of one cut's
// immediate findings: in event time (how far past the cut the input had
// to go) and in wall time (from producing the cut).
type immediateDelay struct {
	cut         immediateCut
	event, wall time.Duration
	ids         []string // the stored alerts holding the findings
}

// runImmediate produces lines to one cluster worker in steps: up to each
// cut, then it waits up to wait for the cut's immediate findings to be in
// stored alerts. If they are not (step), it produces the input on in
// steps of 30 s of event time, each followed by 300 ms, until they are.
// It then produces the rest and the end of input, and returns the delays
// and the store with every alert stored (its close is the caller's).
func runImmediate(tb testing.TB, lines [][]byte, cuts []immediateCut, cfg config.Config, mk func() []engine.Detector, wait time.Duration, step, raiseAhead bool) ([]immediateDelay, *store.Store) {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, inputTopic))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, inputTopic, nil, 4, 1); err != nil {
		tb.Fatal(err)
	}
	st, err := store.Open(ctx, tb.TempDir(), store.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(inputTopic))
	if err != nil {
		tb.Fatal(err)
	}
	defer prod.Close()
	ao := app.AlertOptions(cfg)
	// Ticks every second of event time, so that timers of the detection
	// partitions fire at the second one engine's do.
	w, err := kafka.New(kafka.Options{Brokers: brokers, Topic: inputTopic, Group: "haechi", Detectors: mk,
		Lateness: lateness, Store: st, ID: "w0", Alerts: &ao, AlertFlush: 50 * time.Millisecond, TickEvery: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	if !raiseAhead {
		kafka.ImmediateInOrder(w)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			tb.Error(err)
		}
	}()
	var col collector // what the detection stage emitted, for failures
	colCtx, colCancel := context.WithCancel(ctx)
	colDone := make(chan struct{})
	go func() { defer close(colDone); col.run(colCtx, tb, brokers) }()
	defer func() { colCancel(); <-colDone }()
	time.Sleep(2 * time.Second) // the consumer groups settle

	dec := decode.NewDecoder()
	times := make([]time.Time, len(lines)) // the newest event time up to each line
	var newest time.Time
	for i, l := range lines {
		var ev event.Event
		if dec.Decode(l, &ev) == nil && ev.Time.After(newest) {
			newest = ev.Time
		}
		times[i] = newest
	}
	pos := 0
	produce := func(to int) {
		var rs []*kgo.Record
		for _, l := range lines[pos:to] {
			rs = append(rs, &kgo.Record{Topic: inputTopic, Value: l})
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			tb.Fatal(err)
		}
		pos = to
	}
	// stored returns the ids of the stored alerts holding every finding
	// of fs, or nil.
	stored := func(fs []event.Finding) []string {
		as, err := st.ListAlerts(ctx, store.AlertQuery{Limit: store.MaxListLimit, WithFindings: true})
		if err != nil {
			tb.Fatal(err)
		}
		var ids []string
		for _, f := range fs {
			i := slices.IndexFunc(as, func(a event.Alert) bool { return holds(&a, &f) })
			if i < 0 {
				return nil
			}
			ids = append(ids, as[i].ID)
		}
		return ids
	}
	var out []immediateDelay
	for _, cut := range cuts {
		if pos <= cut.cut {
			produce(cut.cut + 1)
		}
		start := time.Now()
		var ids []string
		for ids = stored(cut.findings); ids == nil; ids = stored(cut.findings) {
			if ctx.Err() != nil {
				tb.Fatal("timed out")
			}
			if time.Since(start) < wait {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if !step || pos == len(lines) {
				col.mu.Lock()
				for _, f := range cut.findings {
					i := slices.IndexFunc(col.got, func(g event.Finding) bool {
						return g.Entity == f.Entity && g.Detector == f.Detector && g.Kind == f.Kind && g.Time.Equal(f.Time)
					})
					var after time.Duration
					if i >= 0 {
						after = col.at[i].Sub(start)
					}
					tb.Logf("%s %s at %s: on the findings topic: %v (immediate %v, %v after the cut was produced; %d findings there)", f.Detector, f.Entity, f.Time.Format(time.RFC3339), i >= 0, i >= 0 && col.got[i].Immediate, after, len(col.got))
				}
				col.mu.Unlock()
				as, _ := st.ListAlerts(ctx, store.AlertQuery{Limit: store.MaxListLimit, WithFindings: true})
				for _, a := range as {
					if a.Entity == cut.findings[0].Entity {
						tb.Logf("stored alert %s %s %s..%s last %s, %d findings (%d kept)", a.ID, a.State, a.WindowStart.Format(time.RFC3339), a.WindowEnd.Format(time.RFC3339), a.LastTime.Format(time.RFC3339), a.FindingCount, len(a.Findings))
					}
				}
				return append(out, immediateDelay{cut: cut, event: -1, wall: time.Since(start)}), st
			}
			to := pos
			for to < len(lines) && !times[to].After(times[pos-1].Add(30*time.Second)) {
				to++
			}
			produce(to)
			time.Sleep(300 * time.Millisecond)
		}
		out = append(out, immediateDelay{cut: cut, event: times[pos-1].Sub(cut.at), wall: time.Since(start), ids: ids})
	}
	produce(len(lines))
	if err := prod.ProduceSync(ctx, &kgo.Record{Topic: inputTopic, Headers: []kgo.RecordHeader{{Key: kafka.WatermarkHeader, Value: []byte("end")}}}).FirstErr(); err != nil {
		tb.Fatal(err)
	}
	// Every findings partition stores the end of input.
	for ended := 0; ended < 4; {
		if ctx.Err() != nil {
			tb.Fatal("timed out waiting for the end of input")
		}
		time.Sleep(50 * time.Millisecond)
		ended = 0
		for p := range int32(4) {
			cp, ok, err := st.LoadPartitionCheckpoint(ctx, "haechi", kafka.FindingsTopic(inputTopic), p)
			if err != nil {
				tb.Fatal(err)
			}
			if ok {
				if wm, err := kafka.AlertWatermark(cp.Data); err == nil && !wm.Before(engine.EndOfTime) {
					ended++
				}
			}
		}
	}
	return out, st
}

// In cluster mode an immediate finding's alert (canary read, terminated
// identity, forged token, token hijack) is stored while the input is at the
// event-time second where one process emits the finding — the cluster gets
// no later input until it is stored — and with the id it has at the end,
// which is the id app.Pipeline gives it (alerts.ordered, as the cluster),
// unless ordered processing supersedes it (then it ends withdrawn,
// alert.Superseded). At the end the alerts that stand are one process's.
func TestClusterImmediateAlertsAtOnce(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("simulates two days on an in-process Kafka at 336 cuts (~3 min): not in -short or under -race (the plain go test run has it)")
	}
	lines := simLines(t, sim.Options{Seed: 3, Days: 2, Customers: 3000})
	cfg := config.Default()
	cfg.Engine.AllowedLateness = config.Duration(lateness)
	mk, holder := detectors(t, cfg)
	cuts := immediateCuts(t, lines, mk)
	n := 0
	for _, c := range cuts {
		n += len(c.findings)
	}
	if n < 3 {
		t.Fatalf("%d immediate findings: the test proves little", n)
	}
	cfg.Alerts.Ordered = true
	wantAlerts, _ := referenceAlerts(t, lines, cfg, holder)
	finalID := map[string]string{} // finding → id of its alert in one process
	for _, a := range wantAlerts {
		for _, f := range a.Findings {
			finalID[fmt.Sprint(f.Entity, f.Detector, f.Kind, f.Time.UnixNano())] = a.ID
		}
	}
	delays, st := runImmediate(t, lines, cuts, cfg, mk, 20*time.Second, false, true)
	defer st.Close()
	gotAlerts := storedAlerts(t, st)
	byID := map[string]event.Alert{}
	for _, a := range gotAlerts {
		byID[a.ID] = a
	}
	superseded := 0
	for _, d := range delays {
		if d.event != 0 {
			f := d.cut.findings[0]
			t.Fatalf("%s %s at %s: not stored within 20 s while the input stayed at %s", f.Detector, f.Entity, f.Time.Format(time.RFC3339), d.cut.at.Format(time.RFC3339))
		}
		for i, f := range d.cut.findings {
			want := finalID[fmt.Sprint(f.Entity, f.Detector, f.Kind, f.Time.UnixNano())]
			if want == "" { // beyond the findings kept (alert.Options.MaxFindings)
				if i := slices.IndexFunc(wantAlerts, func(a event.Alert) bool { return holds(&a, &f) }); i >= 0 {
					want = wantAlerts[i].ID
				}
			}
			if first := byID[d.ids[i]]; d.ids[i] != want && !alert.Superseded(&first) {
				t.Errorf("%s %s at %s: stored first in alert %s (%s, %q), in one process in %s", f.Detector, f.Entity, f.Time.Format(time.RFC3339),
					d.ids[i], first.State, first.Explanation, want)
			} else if d.ids[i] != want {
				superseded++
			}
		}
	}
	t.Logf("%d immediate findings at %d cuts, each stored at its cut; %d first stored in a preview later superseded", n, len(cuts), superseded)
	if got := standing(gotAlerts); js(got) != js(wantAlerts) {
		t.Errorf("cluster stored %d alerts that stand, one process %d", len(got), len(wantAlerts))
		diffAlerts(t, got, wantAlerts)
	}
}

// BenchmarkImmediateAlertDelay measures how late a cluster worker stores
// the alerts of immediate findings, over two simulated days produced in
// steps (see runImmediate): in event time past the second where one
// process emits the finding, and in wall time from producing that second.
// One iteration is a whole run; the figures are over its first 40 cuts.
//
//	go test -run '^$' -bench ImmediateAlertDelay -benchtime 1x ./internal/kafka
func BenchmarkImmediateAlertDelay(b *testing.B) {
	lines := simLines(b, sim.Options{Seed: 3, Days: 2, Customers: 3000})
	cfg := config.Default()
	cfg.Engine.AllowedLateness = config.Duration(lateness)
	mk, _ := detectors(b, cfg)
	cuts := immediateCuts(b, lines, mk)
	// The first 40 cuts (the first day's morning): waiting in order, each
	// cut costs seconds of stepping.
	cuts = cuts[:min(len(cuts), 40)]
	for _, ahead := range []bool{false, true} {
		b.Run(fmt.Sprintf("raise_ahead=%v", ahead), func(b *testing.B) { benchImmediate(b, lines, cuts, cfg, mk, ahead) })
	}
}

func benchImmediate(b *testing.B, lines [][]byte, cuts []immediateCut, cfg config.Config, mk func() []engine.Detector, ahead bool) {
	var ev, wall []float64
	for range b.N {
		ds, st := runImmediate(b, lines, cuts, cfg, mk, 2*time.Second, true, ahead)
		st.Close()
		for _, d := range ds {
			ev = append(ev, d.event.Seconds())
			wall = append(wall, float64(d.wall.Milliseconds()))
		}
	}
	sort.Float64s(ev)
	sort.Float64s(wall)
	q := func(xs []float64, p float64) float64 { return xs[min(len(xs)-1, int(p*float64(len(xs))))] }
	b.ReportMetric(float64(len(ev)/b.N), "cuts")
	b.ReportMetric(q(ev, 0.5), "event-s-p50")
	b.ReportMetric(ev[len(ev)-1], "event-s-max")
	b.ReportMetric(q(wall, 0.5), "wall-ms-p50")
	b.ReportMetric(q(wall, 0.99), "wall-ms-p99")
}

// holds reports whether alert a holds finding f: lists it, or — an alert
// keeps only the first 100 findings (alert.Options.MaxFindings) but counts
// all — has been extended over its time (a withdrawn superseded preview
// only if it lists it).
func holds(a *event.Alert, f *event.Finding) bool {
	if a.Entity != f.Entity {
		return false
	}
	if slices.ContainsFunc(a.Findings, func(g event.Finding) bool {
		return g.Detector == f.Detector && g.Kind == f.Kind && g.Time.Equal(f.Time)
	}) {
		return true
	}
	return a.State != event.AlertWithdrawn && len(a.Findings) < a.FindingCount &&
		!f.Time.Before(a.WindowStart) && !f.Time.After(a.LastTime)
}
