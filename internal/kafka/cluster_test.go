package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/alert"
	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/detect/detecttest"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/kafka"
	"github.com/haechi-sec/haechi/internal/ledger"
	"github.com/haechi-sec/haechi/internal/rules"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

const (
	inputTopic = "events"
	lateness   = 5 * time.Minute
)

func simLines(t testing.TB, o sim.Options) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := sim.Generate(context.Background(), o, &buf, nil); err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for _, l := range bytes.Split(buf.Bytes(), []byte("\n")) {
		if len(bytes.TrimSpace(l)) > 0 {
			lines = append(lines, l)
		}
	}
	return lines
}

// reference runs lines through one engine, one event per batch (as the
// workers feed their partitions), to the end of input.
func reference(t *testing.T, lines [][]byte, shards int, mk func() []engine.Detector) []event.Finding {
	t.Helper()
	eng, err := engine.New(engine.Options{Detectors: mk(), Shards: shards, Lateness: lateness,
		InputName: func(uint32) string { return inputTopic }})
	if err != nil {
		t.Fatal(err)
	}
	var got []event.Finding
	done := make(chan struct{})
	go func() {
		defer close(done)
		for o := range eng.Output() {
			got = append(got, o.Findings...)
		}
	}()
	go func() { _ = eng.Run(context.Background()) }()
	dec := decode.NewDecoder()
	for i, l := range lines {
		var ev event.Event
		if err := dec.Decode(l, &ev); err != nil {
			continue
		}
		ev.Line = uint32(i + 1)
		if err := eng.Submit(context.Background(), engine.Batch{Events: []event.Event{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	eng.Close()
	<-done
	detecttest.Sort(got)
	return got
}

func produceInput(t testing.TB, cl *kgo.Client, lines [][]byte) {
	t.Helper()
	var rs []*kgo.Record
	for _, l := range lines {
		rs = append(rs, &kgo.Record{Topic: inputTopic, Value: l})
	}
	rs = append(rs, &kgo.Record{Topic: inputTopic, Headers: []kgo.RecordHeader{{Key: kafka.WatermarkHeader, Value: []byte("end")}}})
	for i := 0; i < len(rs); i += 1000 {
		if err := cl.ProduceSync(context.Background(), rs[i:min(i+1000, len(rs))]...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
}

type collector struct {
	mu    sync.Mutex
	dedup kafka.Dedup
	got   []event.Finding
	at    []time.Time // when each of got was read
	dups  int
}

func (c *collector) run(ctx context.Context, t testing.TB, brokers []string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(kafka.FindingsTopic(inputTopic)),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Error(err)
		return
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		fs.EachRecord(func(r *kgo.Record) {
			var src []byte
			for _, h := range r.Headers {
				switch h.Key {
				case kafka.SourceHeader:
					src = h.Value
				case kafka.MarkHeader:
					return // a watermark mark, no finding
				}
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if !c.dedup.Fresh(r.Partition, src) {
				c.dups++
				return
			}
			var f event.Finding
			if err := json.Unmarshal(r.Value, &f); err != nil {
				t.Error(err)
				return
			}
			for _, h := range r.Headers {
				f.Immediate = f.Immediate || h.Key == kafka.ImmediateHeader
			}
			c.got = append(c.got, f)
			c.at = append(c.at, time.Now())
		})
	}
}

func (c *collector) count() (n, dups int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got), c.dups
}

// withImmediate adds Immediate (not in a finding's JSON form) to findings
// compared as JSON.
func withImmediate(fs []event.Finding) any {
	type imm struct {
		event.Finding
		Imm bool `json:"immediate"`
	}
	out := make([]imm, len(fs))
	for i, f := range fs {
		out[i] = imm{f, f.Immediate}
	}
	return out
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// Three workers consume a simulated stream; one is killed mid-stream (no
// graceful checkpoint) and replaced. The findings they emit, repeats
// dropped, equal those of one engine over the same events, and the alerts
// their alert stages store equal those app.Pipeline raises (with
// alerts.ordered, as the cluster's alert stage) over the same events.
func TestClusterCrashEqualsSingleProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates two days on an in-process Kafka")
	}
	// Two simulated days; one under the race detector, which is there for
	// the workers' concurrency (the crash, the takeover, the alert and
	// ledger stages), not for the volume, and took 5–6 min of CI with two.
	days := 2
	if raceEnabled {
		days = 1
	}
	lines := simLines(t, sim.Options{Seed: 3, Days: days, Customers: 3000})
	cfg := config.Default()
	cfg.Engine.Shards = 4
	cfg.Engine.AllowedLateness = config.Duration(lateness)
	mk, holder := detectors(t, cfg)
	want := reference(t, lines, 4, mk)
	if len(want) == 0 {
		t.Fatal("the reference found nothing: the test proves nothing")
	}
	cfg.Alerts.Ordered = true // as the cluster's alert stage
	wantAlerts, wantLedger := referenceAlerts(t, lines, cfg, holder)
	if len(wantAlerts) == 0 {
		t.Fatal("the reference raised no alert: the test proves nothing")
	}
	if len(wantLedger) == 0 || !strings.Contains(strings.Join(wantLedger, "\n"), ":") {
		t.Fatal("the reference ledger is empty or has no dictionary ids: the test proves little")
	}
	t.Logf("%d events, %d findings, %d alerts, %d ledger rows in one process", len(lines), len(want), len(wantAlerts), len(wantLedger))

	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, inputTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, inputTopic, nil, 4, 1); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(inputTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	produceInput(t, prod, lines)

	var log *slog.Logger
	if testing.Verbose() && os.Getenv("HAECHI_KAFKA_DEBUG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var col collector
	colCtx, colCancel := context.WithCancel(ctx)
	colDone := make(chan struct{})
	go func() { defer close(colDone); col.run(colCtx, t, brokers) }()

	type running struct {
		cancel context.CancelFunc
		done   chan error
	}
	start := func(id string) running {
		ao := app.AlertOptions(cfg)
		w, err := kafka.New(kafka.Options{Brokers: brokers, Topic: inputTopic, Group: "haechi", Detectors: mk,
			Lateness: lateness, Store: st, CheckpointEvery: 500, ID: id, Logger: log,
			Alerts: &ao, AlertFlush: 50 * time.Millisecond, Ledger: true, LedgerFlushEvery: 6 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		// Ledger deltas reach the store mostly with checkpoints, and
		// slowly: a checkpoint stored before its deltas could lose them
		// in the crash (the successor skips the records below it). Not
		// under the race detector, where the workers are slow enough and
		// the slower merges would outlast the test's time.
		if !raceEnabled {
			kafka.SlowLedger(w, 200*time.Millisecond)
		}
		wctx, wcancel := context.WithCancel(ctx)
		r := running{cancel: wcancel, done: make(chan error, 1)}
		go func() { r.done <- w.Run(wctx) }()
		return r
	}
	workers := []running{start("w0"), start("w1"), start("w2")}

	// Kill worker 0 once a third of the findings are out.
	// waitFor waits for n findings, or for 20 s without a new one.
	waitFor := func(n int) {
		last, prev, moved := time.Now(), -1, time.Now()
		for {
			got, dups := col.count()
			if got != prev {
				prev, moved = got, time.Now()
			}
			if time.Since(last) > 5*time.Second {
				last = time.Now()
				t.Logf("%d findings, %d repeats so far", got, dups)
			}
			if got >= n || time.Since(moved) > 20*time.Second {
				return
			}
			if ctx.Err() != nil {
				got, _ := col.count()
				t.Fatalf("timed out with %d of %d findings", got, len(want))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor(len(want) / 3)
	workers[0].cancel()
	if err := <-workers[0].done; err != nil {
		t.Fatal(err)
	}
	killedAt, _ := col.count()
	workers[0] = start("w0")
	waitFor(len(want))
	// The alerts in the store become those of one process, or 20 s pass
	// without a change.
	last, prev, wantJS := time.Now(), "", js(wantAlerts)
	for time.Since(last) < 20*time.Second && ctx.Err() == nil {
		now := js(standing(storedAlerts(t, st)))
		if now == wantJS {
			break
		}
		if now != prev {
			prev, last = now, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	// So do the ledger rows (the ends of partitions are handed to the
	// ledger's writers at the end of input).
	last, prev, wantLJS := time.Now(), "", js(wantLedger)
	for time.Since(last) < 20*time.Second && ctx.Err() == nil {
		now := js(ledgerRows(t, st))
		if now == wantLJS {
			break
		}
		if now != prev {
			prev, last = now, time.Now()
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // anything more would be a surplus
	for _, w := range workers {
		w.cancel()
		if err := <-w.done; err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}
	colCancel()
	<-colDone
	got, dups := col.got, col.dups
	detecttest.Sort(got)
	t.Logf("worker 0 killed after %d findings; %d findings, %d repeats dropped", killedAt, len(got), dups)
	if a, b := js(withImmediate(got)), js(withImmediate(want)); a != b {
		t.Errorf("cluster found %d findings, one process %d", len(got), len(want))
		diff(t, got, want)
	}
	stored := storedAlerts(t, st)
	gotAlerts := standing(stored)
	t.Logf("%d alerts stored by the cluster, besides %d raised ahead and superseded", len(gotAlerts), len(stored)-len(gotAlerts))
	if a, b := js(gotAlerts), js(wantAlerts); a != b {
		t.Errorf("cluster stored %d alerts, one process %d", len(gotAlerts), len(wantAlerts))
		diffAlerts(t, gotAlerts, wantAlerts)
	}
	gotLedger := ledgerRows(t, st)
	t.Logf("%d ledger rows stored by the cluster", len(gotLedger))
	diffLines(t, "ledger row", gotLedger, wantLedger)
}

// ledgerRows returns every ledger row of st as text: the key, first and
// last, and the record ids of the bitmap (dictionary numbers replaced by
// the record ids they stand for, since two stores number them in the
// order they met them).
func ledgerRows(t *testing.T, st *store.Store) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	for _, dim := range ledger.Dimensions {
		rows, err := st.LedgerRows(ctx, string(dim), nil, 0, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			bm := roaring.New()
			if _, err := bm.FromBuffer(r.Bitmap); err != nil {
				t.Fatal(err)
			}
			var ids []string
			var dict []uint32
			for _, v := range bm.ToArray() {
				if v >= ledger.DictBase {
					dict = append(dict, v)
				} else {
					ids = append(ids, strconv.FormatUint(uint64(v), 10))
				}
			}
			names, err := st.LedgerDictNames(ctx, dict)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range dict {
				n, ok := names[v]
				if !ok {
					n = "?unnamed-" + strconv.FormatUint(uint64(v), 10)
				}
				ids = append(ids, n)
			}
			slices.Sort(ids)
			out = append(out, fmt.Sprintf("%s %s %d %s %s %d %d [%s]", r.Dim, r.Value, r.Day, r.RType, r.Field, r.First, r.Last, strings.Join(ids, " ")))
		}
	}
	slices.Sort(out)
	return out
}

// diffLines reports the lines only in got or only in want (a few of each).
func diffLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if slices.Equal(got, want) {
		return
	}
	t.Errorf("cluster: %d %ss, one process %d", len(got), what, len(want))
	in := func(xs []string) map[string]bool {
		m := make(map[string]bool, len(xs))
		for _, x := range xs {
			m[x] = true
		}
		return m
	}
	g, w := in(got), in(want)
	shown := 0
	for _, x := range got {
		if !w[x] && shown < 5 {
			t.Errorf("only in the cluster: %.300s", x)
			shown++
		}
	}
	shown = 0
	for _, x := range want {
		if !g[x] && shown < 5 {
			t.Errorf("only in one process: %.300s", x)
			shown++
		}
	}
}

// detectors is what serve runs: the configured detectors and the rules.
func detectors(t testing.TB, cfg config.Config) (func() []engine.Detector, *rules.Holder) {
	rs, err := app.LoadRules(cfg.Rules)
	if err != nil {
		t.Fatal(err)
	}
	h := rules.NewHolder(rs.Set)
	return func() []engine.Detector { return append(app.Detectors(cfg, nil), rules.Detectors(h)...) }, h
}

// referenceAlerts runs lines through app.Pipeline (one event per batch, as
// the workers feed their partitions), stores its alerts in a store of its
// own as serve's writer would and returns them as stored.
func referenceAlerts(t *testing.T, lines [][]byte, cfg config.Config, h *rules.Holder) ([]event.Alert, []string) {
	t.Helper()
	st, err := store.Open(t.Context(), t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	led, err := ledger.Open(t.Context(), st, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var changes []event.Alert
	p, err := app.NewPipeline(app.PipelineOptions{Config: cfg, Rules: h, Ledger: led,
		Sinks:     []alert.Sink{alert.SinkFunc(func(_ alert.Change, a event.Alert) { changes = append(changes, a) })},
		InputName: func(uint32) string { return inputTopic }})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	dec := decode.NewDecoder()
	for i, l := range lines {
		var ev event.Event
		if err := dec.Decode(l, &ev); err != nil {
			continue
		}
		ev.Line = uint32(i + 1)
		if err := p.Submit(context.Background(), []event.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	p.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := st.SaveAlerts(t.Context(), changes); err != nil {
		t.Fatal(err)
	}
	return storedAlerts(t, st), ledgerRows(t, st)
}

func storedAlerts(t *testing.T, st *store.Store) []event.Alert {
	t.Helper()
	as, err := st.ListAlerts(context.Background(), store.AlertQuery{Limit: store.MaxListLimit, WithFindings: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(as) == store.MaxListLimit {
		t.Fatal("too many alerts to compare")
	}
	slices.SortFunc(as, func(a, b event.Alert) int { return strings.Compare(a.ID, b.ID) })
	return as
}

// standing leaves out of a cluster's stored alerts those raised ahead of
// ordered processing and superseded (alert.Superseded): withdrawn previews
// whose findings ordered processing put into another alert. One process
// (alerts.ordered, without raising ahead) stores none; every other alert
// must be one it stores, alike.
func standing(as []event.Alert) []event.Alert {
	return slices.DeleteFunc(slices.Clone(as), func(a event.Alert) bool { return alert.Superseded(&a) })
}

func diffAlerts(t *testing.T, got, want []event.Alert) {
	t.Helper()
	byID := map[string]event.Alert{}
	for _, a := range want {
		byID[a.ID] = a
	}
	n := 0
	for _, a := range got {
		w, ok := byID[a.ID]
		delete(byID, a.ID)
		switch {
		case !ok:
			t.Logf("+ %s %s %s %s risk %.1f findings %d", a.ID, a.Time.Format(time.RFC3339), a.Entity, a.Title, a.Risk, a.FindingCount)
		case js(a) != js(w):
			for i, f := range a.Findings {
				if i < 6 || f.Time.Before(a.Time) {
					t.Logf("  got %s %s %s %.1f", f.Time.Format(time.RFC3339Nano), f.Detector, f.Kind, f.Contribution)
				}
			}
			for i, f := range w.Findings {
				if i < 6 || f.Time.Before(w.Time) {
					t.Logf("  want %s %s %s %.1f", f.Time.Format(time.RFC3339Nano), f.Detector, f.Kind, f.Contribution)
				}
			}
			t.Logf("~ %s %s %s: got risk %.1f, %d findings, %q; want risk %.1f, %d findings, %q", a.ID, a.Entity, a.Title,
				a.Risk, a.FindingCount, a.Explanation, w.Risk, w.FindingCount, w.Explanation)
		default:
			continue
		}
		if n++; n == 10 {
			return
		}
	}
	for _, a := range byID {
		for _, f := range a.Findings {
			t.Logf("    %s %s %s %.1f %q", f.Time.Format(time.RFC3339Nano), f.Detector, f.Kind, f.Contribution, f.Explanation)
		}
		t.Logf("- %s %s %s %s risk %.1f findings %d", a.ID, a.Time.Format(time.RFC3339), a.Entity, a.Title, a.Risk, a.FindingCount)
		if n++; n == 10 {
			return
		}
	}
}

func diff(t *testing.T, got, want []event.Finding) {
	t.Helper()
	count := map[string]int{}
	for _, f := range want {
		count[js(withImmediate([]event.Finding{f}))]++
	}
	for _, f := range got {
		count[js(withImmediate([]event.Finding{f}))]--
	}
	n := 0
	for k, v := range count {
		if v != 0 && n < 10 {
			t.Logf("%+d %s", v, k)
			n++
		}
	}
}
