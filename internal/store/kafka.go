package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/haechi-sec/haechi/internal/event"
)

// PartitionCheckpoint is the state of one Kafka partition's entities
// (internal/kafka): Data as of NextOffset, the first offset of the
// partition it does not cover.
type PartitionCheckpoint struct {
	Group      string
	Topic      string
	Partition  int32
	NextOffset int64
	Data       []byte
	SavedAt    time.Time
}

// partitionCheckpointName is the checkpoints row of (group, topic,
// partition). Partition checkpoints share the checkpoints table (no
// migration): their mark is the next offset, shards is 1.
func partitionCheckpointName(group, topic string, partition int32) string {
	return "kafka/" + group + "/" + topic + "/" + strconv.FormatInt(int64(partition), 10)
}

// SavePartitionCheckpoints stores cs in one transaction: each partition's
// state together with the offset it covers, so a worker that takes a
// partition over finds both or neither. A checkpoint never replaces one with
// a higher NextOffset (a worker that lost the partition and writes late
// cannot undo its successor's progress); such rows are left as they are.
func (s *Store) SavePartitionCheckpoints(ctx context.Context, cs []PartitionCheckpoint) error {
	if err := checkPartitionCheckpoints(cs); err != nil {
		return fmt.Errorf("save partition checkpoints: %w", err)
	}
	if len(cs) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, c := range cs {
			if _, err := savePartitionCheckpoint(ctx, tx, c); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save partition checkpoints: %w", err)
	}
	return nil
}

// ErrStaleCheckpoint is returned by SaveAlertsWithCheckpoint when the
// stored checkpoint of the partition covers more than the one offered:
// another worker owns the partition now.
var ErrStaleCheckpoint = errors.New("a newer checkpoint of the partition is stored (another worker owns it)")

// SaveAlertsWithCheckpoint upserts alerts (as SaveAlerts) and stores c
// (as SavePartitionCheckpoints) in one transaction: the alerts a Kafka
// partition's alert stage produced up to c.NextOffset are stored exactly
// when its state and offset are. If a checkpoint with a higher NextOffset is
// stored, nothing is written and the error is ErrStaleCheckpoint: a worker
// that lost the partition cannot overwrite its successor's alerts.
func (s *Store) SaveAlertsWithCheckpoint(ctx context.Context, alerts []event.Alert, c PartitionCheckpoint) error {
	return s.SaveScoredWithCheckpoint(ctx, alerts, nil, c)
}

// SaveScoredWithCheckpoint is SaveAlertsWithCheckpoint that also stores
// scored findings (the risk index, as SaveFindings) in the same
// transaction.
func (s *Store) SaveScoredWithCheckpoint(ctx context.Context, alerts []event.Alert, findings []ScoredFinding, c PartitionCheckpoint) error {
	if err := checkPartitionCheckpoints([]PartitionCheckpoint{c}); err != nil {
		return fmt.Errorf("save alerts with checkpoint: %w", err)
	}
	for i := range alerts {
		if alerts[i].ID == "" {
			return fmt.Errorf("save alerts with checkpoint: alert %d has an empty id", i)
		}
	}
	order := saveOrder(alerts)
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		ok, err := savePartitionCheckpoint(ctx, tx, c)
		if err != nil {
			return err
		}
		if !ok {
			return ErrStaleCheckpoint
		}
		if len(findings) > 0 {
			if err := s.saveFindings(ctx, tx, findings); err != nil {
				return fmt.Errorf("findings: %w", err)
			}
		}
		if len(alerts) == 0 {
			return nil
		}
		return s.saveAlerts(ctx, tx, alerts, order)
	})
	if err != nil {
		return fmt.Errorf("save alerts with checkpoint: %w", err)
	}
	return nil
}

func checkPartitionCheckpoints(cs []PartitionCheckpoint) error {
	for _, c := range cs {
		if c.Group == "" || c.Topic == "" || c.NextOffset < 0 || strings.Contains(c.Group, "/") {
			return fmt.Errorf("bad checkpoint %q %q %d", c.Group, c.Topic, c.NextOffset)
		}
	}
	return nil
}

// savePartitionCheckpoint writes c unless a checkpoint with a higher
// offset is stored; ok reports whether it was written.
func savePartitionCheckpoint(ctx context.Context, tx *sql.Tx, c PartitionCheckpoint) (ok bool, err error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (name, mark, shards, data, saved_at) VALUES (?, ?, 1, ?, ?)
ON CONFLICT (name) DO UPDATE SET mark = excluded.mark, data = excluded.data, saved_at = excluded.saved_at
WHERE excluded.mark >= checkpoints.mark`,
		partitionCheckpointName(c.Group, c.Topic, c.Partition), c.NextOffset, c.Data, toNanos(c.SavedAt))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, err
	}
	return n > 0, nil
}

// LoadPartitionCheckpoint returns the checkpoint of (group, topic,
// partition); ok is false when there is none.
func (s *Store) LoadPartitionCheckpoint(ctx context.Context, group, topic string, partition int32) (c PartitionCheckpoint, ok bool, err error) {
	var at int64
	err = s.db.QueryRowContext(ctx, "SELECT mark, data, saved_at FROM checkpoints WHERE name = ?",
		partitionCheckpointName(group, topic, partition)).Scan(&c.NextOffset, &c.Data, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return PartitionCheckpoint{}, false, nil
	}
	if err != nil {
		return PartitionCheckpoint{}, false, fmt.Errorf("load partition checkpoint: %w", err)
	}
	c.Group, c.Topic, c.Partition, c.SavedAt = group, topic, partition, fromNanos(at)
	return c, true, nil
}
