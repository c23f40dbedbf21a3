package kafka_test

import (
	"context"
	"fmt"
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

// BenchmarkCluster measures events per second end to end through an
// in-process Kafka (kfake) for 1 and 2 workers (in this one process):
// from producing a week of simulated traffic to running workers until the
// end of input has passed re-keying, detection and the alert stage of
// every findings partition (each stored with its alerts). The workers'
// start and group joins are not timed.
//
//	go test -run '^$' -bench Cluster -count 5 ./internal/kafka | tee new.txt
//	benchstat new.txt
func BenchmarkCluster(b *testing.B) {
	lines := simLines(b, sim.Options{Seed: 3, Days: 7, Customers: 3000})
	cfg := config.Default()
	mk, _ := detectors(b, cfg)
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				runCluster(b, lines, workers, cfg, mk)
			}
			b.ReportMetric(float64(len(lines)*b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// runCluster sets up a cluster with the input produced, then times the
// workers until every findings partition's alert stage has stored the end
// of input.
func runCluster(b *testing.B, lines [][]byte, workers int, cfg config.Config, mk func() []engine.Detector) {
	const partitions = 4
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, inputTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, inputTopic, nil, partitions, 1); err != nil {
		b.Fatal(err)
	}
	st, err := store.Open(ctx, b.TempDir(), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(inputTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()

	ao := app.AlertOptions(cfg)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, workers)
	for i := range workers {
		w, err := kafka.New(kafka.Options{Brokers: brokers, Topic: inputTopic, Group: "haechi", Detectors: mk,
			Lateness: lateness, Store: st, ID: fmt.Sprint("w", i), Alerts: &ao})
		if err != nil {
			b.Fatal(err)
		}
		go func() { done <- w.Run(wctx) }()
	}
	// Let the consumer groups settle (joins and the first rebalance are
	// not throughput), then time from the first event produced.
	time.Sleep(3 * time.Second)
	b.StartTimer()
	produceInput(b, prod, lines)
	for ended := 0; ended < partitions; {
		if ctx.Err() != nil {
			b.Fatalf("timed out: %d of %d findings partitions reached the end", ended, partitions)
		}
		time.Sleep(20 * time.Millisecond)
		ended = 0
		for p := range int32(partitions) {
			cp, ok, err := st.LoadPartitionCheckpoint(ctx, "haechi", kafka.FindingsTopic(inputTopic), p)
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				continue
			}
			wm, err := kafka.AlertWatermark(cp.Data)
			if err != nil {
				b.Fatal(err)
			}
			if !wm.Before(engine.EndOfTime) {
				ended++
			}
		}
	}
	b.StopTimer()
	stop()
	for range workers {
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}
