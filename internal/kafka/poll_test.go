package kafka_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/kafka"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// TestClusterDetectPollBounded: a worker catching up on a backlog hands
// its detection stage at most kafka.DetectPollMax records a poll, and each
// partition's engine a poll's records in one hand-off. Each is
// decoded into a slice held until the poll is handled (about 1 kB a
// record); unbounded, BenchmarkClusterCost's worker polled 299 k records
// at once (a 375 MB slice, grown by copying, scanned by every GC cycle).
func TestClusterDetectPollBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates a day on an in-process Kafka")
	}
	lines := simLines(t, sim.Options{Seed: 3, Days: 1, Customers: 2000})
	cfg := config.Default()
	mk, _ := detectors(t, cfg)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, inputTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	limit := 4 * time.Minute
	if raceEnabled {
		limit = 15 * time.Minute
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	const partitions = 4
	if err := kafka.EnsureTopics(ctx, brokers, inputTopic, nil, partitions, 1); err != nil {
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
	produceInput(t, prod, lines) // the backlog, before the worker starts
	ao := app.AlertOptions(cfg)
	w, err := kafka.New(kafka.Options{Brokers: brokers, Topic: inputTopic, Group: "haechi", Detectors: mk,
		Lateness: lateness, Store: st, ID: "w0", Alerts: &ao})
	if err != nil {
		t.Fatal(err)
	}
	counts := kafka.CountDetectPolls(w)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	for ended := 0; ended < partitions; {
		if ctx.Err() != nil {
			t.Fatalf("timed out: %d of %d findings partitions reached the end", ended, partitions)
		}
		time.Sleep(50 * time.Millisecond)
		ended = 0
		for p := range int32(partitions) {
			cp, ok, err := st.LoadPartitionCheckpoint(ctx, "haechi", kafka.FindingsTopic(inputTopic), p)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				if wm, err := kafka.AlertWatermark(cp.Data); err == nil && !wm.Before(engine.EndOfTime) {
					ended++
				}
			}
		}
	}
	w.Shutdown()
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	polls, records, largest := counts.Counts()
	t.Logf("%d events: %d repartition records in %d polls, the largest of %d", len(lines), records, polls, largest)
	if records < 2*kafka.DetectPollMax {
		t.Fatalf("only %d repartition records: the test proves little", records)
	}
	if largest > kafka.DetectPollMax {
		t.Errorf("a poll of %d records: want at most %d", largest, kafka.DetectPollMax)
	}
	// A poll's records reach each partition's engine in one hand-off
	// (engine.SubmitGroup): at most one per repartition partition a poll,
	// and one more each for the checkpoint of the graceful stop. Handed
	// over one at a time, every record was at least one.
	handoffs, messages := counts.HandOffs()
	repart := len(kafka.DefaultKinds) * partitions
	t.Logf("%d engine messages in %d hand-offs", messages, handoffs)
	if messages < records {
		t.Errorf("%d engine messages for %d records: want one at least for each", messages, records)
	}
	if limit := polls*repart + repart; handoffs > limit {
		t.Errorf("%d hand-offs to the engines in %d polls: want at most %d (one per partition a poll)", handoffs, polls, limit)
	}
}
