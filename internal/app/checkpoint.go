package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/haechi-sec/haechi/internal/config"
	"github.com/haechi-sec/haechi/internal/mint"
	"github.com/haechi-sec/haechi/internal/snap"
	"github.com/haechi-sec/haechi/internal/store"
)

// checkpointName is the store row serve's detector checkpoint lives in.
const checkpointName = "detectors"

const checkpointVersion = 1

// mintCheckpointName is the store row of the mint registry's snapshot,
// saved with the detectors' checkpoint at the same mark.
const mintCheckpointName = "mint_registry"

// restoreMints restores reg from its stored snapshot when that was taken
// at mark, the detectors' checkpoint's (the spool then replays the mints
// after it). Otherwise the registry starts empty and the replay refills
// what the spool retains; Verify answers uncovered for tokens it cannot
// know about (mint.Uncovered).
func restoreMints(ctx context.Context, st *store.Store, log *slog.Logger, mark uint64, reg *mint.Registry) {
	sc, ok, err := st.LoadCheckpoint(ctx, mintCheckpointName)
	switch {
	case err != nil:
		log.Error("mint registry: cannot read its checkpoint; starting empty", "err", err)
		return
	case !ok:
		return
	case sc.Mark != mark:
		log.Warn("mint registry: its checkpoint is not the detectors'; starting empty", "mark", sc.Mark, "detectors_mark", mark)
		return
	}
	if err := reg.Restore(sc.Data); err != nil {
		log.Error("mint registry: damaged checkpoint; starting empty", "err", err)
		return
	}
	log.Info("mint registry: restored", "tokens", reg.Len(), "mark", mark)
}

// sweepEvery is how often the mint registry evicts expired tokens.
const sweepEvery = time.Minute

// sweepMints evicts expired tokens from reg every sweepEvery and ends
// the grace of graced tokens every second (mint.Registry.Recheck),
// logging those never minted, until ctx ends. The registry is judged on
// the wall clock: gateways ask now.
func sweepMints(ctx context.Context, reg *mint.Registry, log *slog.Logger) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, g := range reg.Recheck(now) {
				log.Warn("mint registry: a graced token was never minted; its uses are judged by token_provenance from the gateway's access log",
					"token", g.TokenID, "key", g.KeyID, "source", g.Source, "issued_at", g.IssuedAt, "graced_at", g.GracedAt)
			}
			if now.Sub(last) < sweepEvery {
				continue
			}
			last = now
			if n := reg.Sweep(now); n > 0 {
				log.Debug("mint registry: evicted expired tokens", "evicted", n, "live", reg.Len())
			}
		}
	}
}

// EncodeCheckpoint encodes the per-shard snapshots of c (its Mark and
// Shards travel in the store row).
func EncodeCheckpoint(c Checkpoint) []byte {
	var w snap.Writer
	w.Byte(checkpointVersion)
	names := make([]string, 0, len(c.Parts))
	for n := range c.Parts {
		names = append(names, n)
	}
	slices.Sort(names)
	w.Bytes(c.Alerts)
	w.Uint(uint64(len(names)))
	for _, n := range names {
		w.String(n)
		w.Uint(uint64(len(c.Parts[n])))
		for _, p := range c.Parts[n] {
			w.Bytes(p)
		}
	}
	return w.B
}

// DecodeCheckpoint decodes what EncodeCheckpoint wrote, for mark and
// shards; a snapshot of another version or a damaged one is an error.
func DecodeCheckpoint(b []byte, mark uint64, shards int) (Checkpoint, error) {
	r := snap.NewReader(b)
	if v := r.Byte(); r.Err() == nil && v != checkpointVersion {
		return Checkpoint{}, fmt.Errorf("checkpoint: version %d, want %d", v, checkpointVersion)
	}
	c := Checkpoint{Mark: mark, Shards: shards, Parts: map[string][][]byte{}}
	c.Alerts = r.Bytes()
	n := r.Count(2)
	for range n {
		name := r.String()
		k := r.Count(1)
		if r.Err() == nil && k != shards {
			return Checkpoint{}, fmt.Errorf("checkpoint: detector %s has %d shard snapshots, want %d", name, k, shards)
		}
		ps := make([][]byte, k)
		for i := range ps {
			ps[i] = r.Bytes()
		}
		c.Parts[name] = ps
	}
	if err := r.End(); err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	return c, nil
}

// loadCheckpoint reads serve's last checkpoint; nil when there is none or
// it cannot be read (logged: the detectors start cold).
func loadCheckpoint(ctx context.Context, st *store.Store, log *slog.Logger) *Checkpoint {
	sc, ok, err := st.LoadCheckpoint(ctx, checkpointName)
	if err != nil {
		log.Error("checkpoint: cannot load; the detectors start cold", "err", err)
		return nil
	}
	if !ok {
		return nil
	}
	c, err := DecodeCheckpoint(sc.Data, sc.Mark, sc.Shards)
	if err != nil {
		log.Error("checkpoint: cannot decode; the detectors start cold", "err", err)
		return nil
	}
	log.Info("checkpoint: loaded", "mark", c.Mark, "shards", c.Shards, "bytes", len(sc.Data), "saved_at", sc.SavedAt)
	return &c
}

// checkpointSaver writes checkpoints to the store off the pipeline's
// goroutine. Only the newest waiting checkpoint is kept: a slow store
// skips intermediate ones rather than queueing them.
type checkpointSaver struct {
	st  *store.Store
	log *slog.Logger
	// durable, if set, returns once everything the alert sinks were handed
	// before the call is stored (the alert writer's and the responder's
	// queues): a checkpoint restores the alert stage's state, and a restart
	// does not raise again what that state says was raised, so what it
	// raised must be in the store before the checkpoint is.
	durable func(context.Context) error
	ch      chan Checkpoint
	done    chan struct{}
	bytes   prometheus.Gauge
	mark    prometheus.Gauge
	saved   prometheus.Counter
}

func newCheckpointSaver(st *store.Store, log *slog.Logger, reg prometheus.Registerer, durable func(context.Context) error) *checkpointSaver {
	s := &checkpointSaver{st: st, log: log, durable: durable, ch: make(chan Checkpoint, 1), done: make(chan struct{}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "haechi_checkpoint_bytes", Help: "Size of the last stored detector checkpoint."}),
		mark:  prometheus.NewGauge(prometheus.GaugeOpts{Name: "haechi_checkpoint_mark", Help: "Spool offset of the last stored detector checkpoint."}),
		saved: prometheus.NewCounter(prometheus.CounterOpts{Name: "haechi_checkpoints_saved_total", Help: "Detector checkpoints stored."}),
	}
	if reg != nil {
		reg.MustRegister(s.bytes, s.mark, s.saved)
	}
	return s
}

// Offer hands c over, replacing a checkpoint still waiting.
func (s *checkpointSaver) Offer(c Checkpoint) {
	for {
		select {
		case s.ch <- c:
			return
		default:
		}
		select {
		case <-s.ch: // drop the older one
		default:
		}
	}
}

// Run saves offered checkpoints until ctx ends, then saves the one still
// waiting, if any.
func (s *checkpointSaver) Run(ctx context.Context) {
	defer close(s.done)
	for {
		select {
		case c := <-s.ch:
			s.save(c)
		case <-ctx.Done():
			select {
			case c := <-s.ch:
				s.save(c)
			default:
			}
			return
		}
	}
}

func (s *checkpointSaver) save(c Checkpoint) {
	data := EncodeCheckpoint(c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	// The sinks were handed the alerts of every event before the mark
	// before the checkpoint was offered.
	if s.durable != nil {
		if err := s.durable(ctx); err != nil {
			s.log.Error("checkpoint: the alerts before it are not stored; not saving it, the next one will be tried", "mark", c.Mark, "err", err)
			return
		}
	}
	if c.Mints != nil {
		// Before the detectors' row: a crash between the two leaves a
		// registry snapshot newer than the detectors' mark, which
		// restoreMints ignores (the replay from the older mark rebuilds it).
		if err := s.st.SaveCheckpoint(ctx, store.StateCheckpoint{Name: mintCheckpointName, Mark: c.Mark, Shards: 1, Data: c.Mints, SavedAt: time.Now()}); err != nil {
			s.log.Error("checkpoint: cannot store the mint registry; the next one will be tried", "mark", c.Mark, "err", err)
			return
		}
	}
	if err := s.st.SaveCheckpoint(ctx, store.StateCheckpoint{Name: checkpointName, Mark: c.Mark, Shards: c.Shards, Data: data, SavedAt: time.Now()}); err != nil {
		s.log.Error("checkpoint: cannot store; the next one will be tried", "mark", c.Mark, "err", err)
		return
	}
	s.bytes.Set(float64(len(data)))
	s.mark.Set(float64(c.Mark))
	s.saved.Inc()
	s.log.Debug("checkpoint: stored", "mark", c.Mark, "bytes", len(data), "took", time.Since(start))
}

// checkpointEvery is how often serve checkpoints (0: never — no spool or
// checkpoints switched off).
func checkpointEvery(cfg config.Config, _ *Checkpoint) time.Duration {
	if !cfg.Spool.Enabled {
		return 0
	}
	return cfg.Engine.CheckpointEvery.D()
}

// restoredThrough is the mark the pipeline was restored from: the
// checkpoint's, if the pipeline used it (same shard count).
func restoredThrough(c *Checkpoint, p *Pipeline) uint64 {
	if c == nil || c.Shards != p.Engine.Shards() {
		return 0
	}
	return c.Mark
}
