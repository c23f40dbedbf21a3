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

// TestClusterLedgerNumbersPerPoll: a worker's ledger dictionary asks the
// store for the numbers of a whole poll's new record ids at once, not one
// event's at a time on the partitions' shards. Before, the store saw about
// one numbering transaction per event with a new id (on PostgreSQL under a
// table lock, every worker again for the ids its partitions met), and the
// shards waited for each: BenchmarkClusterCost measured 315,000 store
// transactions per million events with one worker, 617,000 with two.
func TestClusterLedgerNumbersPerPoll(t *testing.T) {
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
		limit = 15 * time.Minute // the race detector slows the worker several times over
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
	produceInput(t, prod, lines)

	ao := app.AlertOptions(cfg)
	w, err := kafka.New(kafka.Options{Brokers: brokers, Topic: inputTopic, Group: "haechi", Detectors: mk,
		Lateness: lateness, Store: st, ID: "w0", Alerts: &ao, Ledger: true})
	if err != nil {
		t.Fatal(err)
	}
	counts := kafka.CountDictAssigns(w)
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
	requests, ids := counts.Counts()
	t.Logf("%d events: %d record ids numbered in %d requests to the store", len(lines), ids, requests)
	if ids < 1000 {
		t.Fatalf("only %d record ids needed numbers: the test proves little", ids)
	}
	// A poll carries hundreds to thousands of records; one request per
	// event with a new id would be about one per id.
	if requests*20 > ids {
		t.Errorf("%d requests for %d ids: want at most one per 20 ids (one per poll, not per event)", requests, ids)
	}
}
