package kafka_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/haechi-sec/haechi/internal/app"
	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/decode"
	"github.com/haechi-sec/haechi/internal/engine"
	"github.com/haechi-sec/haechi/internal/event"
	"github.com/haechi-sec/haechi/internal/kafka"
	"github.com/haechi-sec/haechi/internal/sim"
	"github.com/haechi-sec/haechi/internal/store"
)

// The cost benchmark's knobs, read from the environment so that one test
// binary can run several workloads (go test flags are fixed per package).
const (
	postgresEnv   = "HAECHI_TEST_POSTGRES" // the store of the workers (as internal/store's tests)
	workerEnv     = "HAECHI_BENCH_WORKER"  // set in a worker child: its brokers|dsn|id
	costDaysEnv   = "HAECHI_BENCH_DAYS"    // simulated days (default 2)
	costCustEnv   = "HAECHI_BENCH_CUSTOMERS"
	costInputsEnv = "HAECHI_BENCH_INPUTS" // input topic partitions (default 4)
	costProfEnv   = "HAECHI_BENCH_CPUPROFILE"
)

// BenchmarkClusterCost measures what a cluster worker costs per event,
// with the access ledger on, for 1 and 2 workers: each worker is a child
// process (this test binary run again, TestClusterWorkerProcess), so its
// CPU time is its own — user + system from getrusage in the child, read
// when production starts and once the end of input has been stored by
// every findings partition. The broker (kfake) and the producer run in
// this process, whose own CPU over the same interval is reported apart
// ("broker-cpu-s/Mev": kfake, the producer and the polling of the
// checkpoints); PostgreSQL's, when it runs on this machine, is read from
// /proc (its backends and the exited ones the postmaster reaped).
//
// Metrics, per million input events:
//
//   - worker-cpu-s/Mev: the CPU seconds of all workers together. The cost
//     per worker does not grow with workers exactly when this stays flat:
//     n workers share the events, so worker i's CPU over its share (E/n)
//     averages to this figure.
//   - max-worker-cpu-s/Mev: the busiest worker's CPU over its share E/n
//     (the balance: equal to the figure above when the work is even).
//   - pg-cpu-s/Mev, pg-xact/Mev, pg-rows/Mev: PostgreSQL's CPU (local
//     server only), committed transactions and rows written (inserted +
//     updated + deleted, pg_stat_database) for the run's database.
//   - events/s: input events over the wall time from the first event
//     produced to the end of input stored.
//
// It needs PostgreSQL (HAECHI_TEST_POSTGRES, as the store's tests; two
// worker processes cannot share the embedded SQLite store). Each run
// gets a schema of its own. The workload is the simulator's company
// (HAECHI_BENCH_DAYS, default 2; HAECHI_BENCH_CUSTOMERS, default 20000),
// produced to an input topic of HAECHI_BENCH_INPUTS partitions (default
// 4, so both workers re-key) and repartition and findings topics of 4.
//
//	HAECHI_TEST_POSTGRES=postgres://… go test -run '^$' -bench ClusterCost -benchtime 1x -count 3 ./internal/kafka
func BenchmarkClusterCost(b *testing.B) {
	dsn := os.Getenv(postgresEnv)
	if dsn == "" {
		b.Skip(postgresEnv + " not set: the workers share a PostgreSQL store (see docs/store.md)")
	}
	if os.Getenv(workerEnv) != "" {
		b.Skip("a worker child runs no benchmark")
	}
	days, customers, inputs := envInt(b, costDaysEnv, 2), envInt(b, costCustEnv, 20000), envInt(b, costInputsEnv, 4)
	lines := simLines(b, sim.Options{Seed: 3, Days: days, Customers: customers})
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	admin, err := openPG(dsn)
	if err != nil {
		b.Fatalf("%s: %v", postgresEnv, err)
	}
	defer admin.Close()
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var sum costRun
			for range b.N {
				b.StopTimer()
				r := runCostCluster(b, exe, admin, dsn, lines, workers, int32(inputs))
				sum.add(r)
			}
			m := float64(len(lines)*b.N) / 1e6
			b.ReportMetric(float64(len(lines)*b.N)/sum.wall.Seconds(), "events/s")
			b.ReportMetric(sum.workers.Seconds()/m, "worker-cpu-s/Mev")
			b.ReportMetric(sum.maxWorker.Seconds()/(m/float64(workers)), "max-worker-cpu-s/Mev")
			b.ReportMetric(sum.broker.Seconds()/m, "broker-cpu-s/Mev")
			if sum.pgCPU >= 0 {
				b.ReportMetric(sum.pgCPU.Seconds()/m, "pg-cpu-s/Mev")
			}
			b.ReportMetric(float64(sum.pg.xact)/m, "pg-xact/Mev")
			b.ReportMetric(float64(sum.records)/(m*1e6), "kafka-records/ev")
			b.ReportMetric(float64(sum.pg.rows)/m, "pg-rows/Mev")
			b.ReportMetric(0, "ns/op") // one op is a whole run: the metrics above say it
		})
	}
}

// keyedInput returns the input records: each event on the input partition
// of its principal (as docs/scale-out.md advises; unkeyed events on the
// partition of their line), then the end-of-input mark on every partition.
func keyedInput(lines [][]byte, inputs int32) []*kgo.Record {
	dec := decode.NewDecoder()
	rs := make([]*kgo.Record, 0, len(lines)+int(inputs))
	for i, l := range lines {
		part := int32(i) % inputs
		var ev event.Event
		if dec.Decode(l, &ev) == nil {
			if k, ok := ev.PrincipalKey(); ok {
				part = int32(engine.HashKey(k) % uint64(inputs))
			}
		}
		rs = append(rs, &kgo.Record{Topic: inputTopic, Partition: part, Value: l})
	}
	for p := range inputs {
		rs = append(rs, &kgo.Record{Topic: inputTopic, Partition: p, Headers: []kgo.RecordHeader{{Key: kafka.WatermarkHeader, Value: []byte("end")}}})
	}
	return rs
}

// costRun is one run's figures over the timed interval.
type costRun struct {
	wall, workers, maxWorker, broker time.Duration
	pgCPU                            time.Duration // -1: not measurable
	pg                               pgStats
	records                          int64 // in the repartition and findings topics
}

func (s *costRun) add(r costRun) {
	s.wall += r.wall
	s.workers += r.workers
	s.maxWorker += r.maxWorker
	s.broker += r.broker
	if r.pgCPU < 0 || s.pgCPU < 0 {
		s.pgCPU = -1
	} else {
		s.pgCPU += r.pgCPU
	}
	s.records += r.records
	s.pg.xact += r.pg.xact
	s.pg.rows += r.pg.rows
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func openPG(dsn string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, err
	}
	db := stdlib.OpenDB(*cfg)
	db.SetMaxOpenConns(1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

// costWorker is a worker child process.
type costWorker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startCostWorker(b *testing.B, exe, spec string, i int) *costWorker {
	cmd := exec.Command(exe, "-test.run", "^TestClusterWorkerProcess$", "-test.bench", "^$", "-test.v")
	cmd.Env = append(os.Environ(), workerEnv+"="+spec)
	if p := os.Getenv(costProfEnv); p != "" {
		cmd.Env = append(cmd.Env, costProfEnv+"="+p+"."+strconv.Itoa(i))
	}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := &costWorker{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	w.await(b, "ready")
	return w
}

// await reads the child's output up to a line "haechi-bench <word> …" and
// returns the rest of it; test framework lines are skipped.
func (w *costWorker) await(b *testing.B, word string) string {
	for w.out.Scan() {
		if rest, ok := strings.CutPrefix(w.out.Text(), "haechi-bench "+word); ok {
			return strings.TrimSpace(rest)
		}
	}
	b.Fatalf("worker child ended before %q: %v", word, w.out.Err())
	return ""
}

// cpu asks the child for its CPU time so far.
func (w *costWorker) cpu(b *testing.B) time.Duration {
	if _, err := io.WriteString(w.in, "cpu\n"); err != nil {
		b.Fatal(err)
	}
	ns, err := strconv.ParseInt(w.await(b, "cpu"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(ns)
}

func runCostCluster(b *testing.B, exe string, admin *sql.DB, dsn string, lines [][]byte, workers int, inputs int32) costRun {
	const partitions = 4
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(inputs, inputTopic))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	brokers := c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, brokers, inputTopic, nil, partitions, 1); err != nil {
		b.Fatal(err)
	}
	// A schema of the run's own, the store migrated once here.
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	schema := "haechi_bench_" + hex.EncodeToString(rb[:])
	if _, err := admin.ExecContext(ctx, "CREATE SCHEMA "+schema); err != nil {
		b.Fatal(err)
	}
	defer func() { _, _ = admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE") }()
	u, err := url.Parse(dsn)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	wdsn := u.String()
	st, err := store.Open(ctx, wdsn, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(inputTopic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	recs := keyedInput(lines, inputs)

	ws := make([]*costWorker, workers)
	for i := range ws {
		ws[i] = startCostWorker(b, exe, strings.Join([]string{strings.Join(brokers, ","), wdsn, "w" + strconv.Itoa(i)}, "|"), i)
	}
	stopped := false
	stopWorkers := func() {
		if stopped {
			return
		}
		stopped = true
		for _, w := range ws {
			_ = w.in.Close()
		}
		for _, w := range ws {
			if err := w.cmd.Wait(); err != nil {
				b.Errorf("worker child: %v", err)
			}
		}
	}
	defer stopWorkers()
	// Let the consumer groups settle (joins and the first rebalance are
	// not throughput), then measure from the first event produced.
	time.Sleep(3 * time.Second)
	pg0, pgc0 := readPGStats(b, admin), pgCPU(admin)
	cpu0 := make([]time.Duration, workers)
	for i, w := range ws {
		cpu0[i] = w.cpu(b)
	}
	self0 := selfCPU()
	start := time.Now()
	for i := 0; i < len(recs); i += 1000 {
		if err := prod.ProduceSync(ctx, recs[i:min(i+1000, len(recs))]...).FirstErr(); err != nil {
			b.Fatal(err)
		}
	}
	polls := int64(0) // transactions of this process's own polling, not the workers'
	for ended := 0; ended < partitions; {
		if ctx.Err() != nil {
			b.Fatalf("timed out: %d of %d findings partitions reached the end", ended, partitions)
		}
		time.Sleep(100 * time.Millisecond)
		ended = 0
		for p := range int32(partitions) {
			polls++
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
	r := costRun{wall: time.Since(start), broker: selfCPU() - self0}
	r.records = topicRecords(b, prod)
	for i, w := range ws {
		d := w.cpu(b) - cpu0[i]
		r.workers += d
		r.maxWorker = max(r.maxWorker, d)
	}
	// PostgreSQL's counters once the workers' connections have ended
	// (backends publish their statistics at exit at the latest), and the
	// CPU of those backends once the postmaster has reaped them. The
	// graceful stop's checkpoints are counted with them.
	stopWorkers()
	time.Sleep(time.Second)
	r.pg = readPGStats(b, admin).minus(pg0)
	r.pg.xact -= polls
	if pgc1 := pgCPU(admin); pgc0 >= 0 && pgc1 >= 0 {
		r.pgCPU = pgc1 - pgc0
	} else {
		r.pgCPU = -1
	}
	if testing.Verbose() {
		logTableStats(b, admin, schema)
	}
	b.Logf("%d workers, %d events, %d records in the repartition and findings topics: %.1f s; worker CPU %.1f s (busiest %.1f s), broker %.1f s, PostgreSQL %.1f s, %d transactions, %d rows",
		workers, len(lines), r.records, r.wall.Seconds(), r.workers.Seconds(), r.maxWorker.Seconds(), r.broker.Seconds(), r.pgCPU.Seconds(), r.pg.xact, r.pg.rows)
	return r
}

// TestClusterWorkerProcess is not a test: BenchmarkClusterCost runs this
// test binary again with HAECHI_BENCH_WORKER set, and this is then one
// cluster worker — the detectors and rules serve runs, the ledger and the
// alert stage on — until its standard input ends. It answers "cpu" with
// its CPU time (user + system, getrusage of this process).
func TestClusterWorkerProcess(t *testing.T) {
	spec := os.Getenv(workerEnv)
	if spec == "" {
		t.Skip("the worker child of BenchmarkClusterCost (runs only with " + workerEnv + ")")
	}
	parts := strings.Split(spec, "|")
	if len(parts) != 3 {
		t.Fatalf("%s=%q: want brokers|dsn|id", workerEnv, spec)
	}
	if p := os.Getenv(costProfEnv); p != "" {
		stop := startProfile(t, filepath.Clean(p))
		defer stop()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, parts[1], store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	cfg := config.Default()
	mk, _ := detectors(t, cfg)
	ao := app.AlertOptions(cfg)
	w, err := kafka.New(kafka.Options{Brokers: strings.Split(parts[0], ","), Topic: inputTopic, Group: "haechi",
		Detectors: mk, Lateness: lateness, Store: st, ID: parts[2], Alerts: &ao, Ledger: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	fmt.Println("haechi-bench ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "cpu" {
			fmt.Printf("haechi-bench cpu %d\n", int64(selfCPU()))
		}
	}
	w.Shutdown()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Error(err)
	}
}

// logTableStats logs the writes and index scans of every table of schema
// (with -test.v): where the store's load comes from.
func logTableStats(b *testing.B, db *sql.DB, schema string) {
	rows, err := db.QueryContext(context.Background(), `SELECT relname, n_tup_ins, n_tup_upd, n_tup_del, COALESCE(idx_scan, 0), seq_scan
		FROM pg_stat_user_tables WHERE schemaname = $1 ORDER BY n_tup_ins + n_tup_upd DESC`, schema)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var ins, upd, del, idx, seq int64
		if err := rows.Scan(&name, &ins, &upd, &del, &idx, &seq); err != nil {
			b.Fatal(err)
		}
		b.Logf("table %s: %d inserted, %d updated, %d deleted, %d index scans, %d sequential scans", name, ins, upd, del, idx, seq)
	}
}

// topicRecords counts the offsets of the repartition and findings topics
// (their records and the transactions' commit markers).
func topicRecords(b *testing.B, cl *kgo.Client) int64 {
	offs, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), kafka.Topics(inputTopic, kafka.DefaultKinds)...)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	offs.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

// selfCPU is this process's CPU time so far (user + system).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pgStats are the counters of pg_stat_database for the current database.
type pgStats struct{ xact, rows int64 }

func (s pgStats) minus(o pgStats) pgStats { return pgStats{s.xact - o.xact, s.rows - o.rows} }

func readPGStats(b *testing.B, db *sql.DB) pgStats {
	var s pgStats
	err := db.QueryRowContext(context.Background(), `SELECT xact_commit, tup_inserted + tup_updated + tup_deleted
		FROM pg_stat_database WHERE datname = current_database()`).Scan(&s.xact, &s.rows)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// pgCPU is the CPU time of a PostgreSQL server on this machine: its
// processes (the postmaster's children) and the children it has reaped;
// -1 when the server is not local or /proc is unreadable.
func pgCPU(db *sql.DB) time.Duration {
	var pid int
	if err := db.QueryRowContext(context.Background(), "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		return -1
	}
	st, err := procStat(pid)
	if err != nil || st.comm != "postgres" {
		return -1
	}
	pm, err := procStat(st.ppid)
	if err != nil {
		return -1
	}
	total := pm.cutime + pm.cstime
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if s, err := procStat(n); err == nil && s.ppid == st.ppid {
			total += s.utime + s.stime
		}
	}
	return time.Duration(total) * time.Second / 100 // USER_HZ: 100 on Linux
}

type procStatus struct {
	comm                         string
	ppid                         int
	utime, stime, cutime, cstime int64
}

func procStat(pid int) (procStatus, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStatus{}, err
	}
	s := string(b)
	l, r := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if l < 0 || r < l {
		return procStatus{}, errors.New("bad stat")
	}
	f := strings.Fields(s[r+1:]) // f[0] is the state (field 3)
	if len(f) < 15 {
		return procStatus{}, errors.New("short stat")
	}
	var p procStatus
	p.comm = s[l+1 : r]
	p.ppid, _ = strconv.Atoi(f[1])
	p.utime, _ = strconv.ParseInt(f[11], 10, 64)
	p.stime, _ = strconv.ParseInt(f[12], 10, 64)
	p.cutime, _ = strconv.ParseInt(f[13], 10, 64)
	p.cstime, _ = strconv.ParseInt(f[14], 10, 64)
	return p, nil
}

// startProfile writes a CPU profile of this process to path until stop.
func startProfile(t *testing.T, path string) (stop func()) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		t.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
