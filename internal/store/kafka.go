package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
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
	for _, c := range cs {
		if c.Group == "" || c.Topic == "" || c.NextOffset < 0 || strings.Contains(c.Group, "/") {
			return fmt.Errorf("save partition checkpoints: bad checkpoint %q %q %d", c.Group, c.Topic, c.NextOffset)
		}
	}
	if len(cs) == 0 {
		return nil
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, c := range cs {
			_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (name, mark, shards, data, saved_at) VALUES (?, ?, 1, ?, ?)
ON CONFLICT (name) DO UPDATE SET mark = excluded.mark, data = excluded.data, saved_at = excluded.saved_at
WHERE excluded.mark >= checkpoints.mark`,
				partitionCheckpointName(c.Group, c.Topic, c.Partition), c.NextOffset, c.Data, toNanos(c.SavedAt))
			if err != nil {
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
