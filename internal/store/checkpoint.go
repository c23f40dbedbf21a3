package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// StateCheckpoint is a pipeline's checkpointed detector state: the
// encoded snapshots of every shard (Data, opaque here) as of spool offset
// Mark, taken with Shards shards.
type StateCheckpoint struct {
	Name    string
	Mark    uint64
	Shards  int
	Data    []byte
	SavedAt time.Time
}

// SaveCheckpoint stores c, replacing the previous checkpoint of the same
// name. (Marks are not compared: a spool that was reset starts again at
// offset 1, and its checkpoints must replace the old ones; one writer per
// name keeps them in order.)
func (s *Store) SaveCheckpoint(ctx context.Context, c StateCheckpoint) error {
	if c.Name == "" {
		return errors.New("save checkpoint: name is required")
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (name, mark, shards, data, saved_at) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET mark = excluded.mark, shards = excluded.shards, data = excluded.data, saved_at = excluded.saved_at`,
			c.Name, int64(c.Mark), c.Shards, c.Data, toNanos(c.SavedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// LoadCheckpoint returns the checkpoint stored under name; ok is false
// when there is none.
func (s *Store) LoadCheckpoint(ctx context.Context, name string) (c StateCheckpoint, ok bool, err error) {
	var mark, at int64
	err = s.db.QueryRowContext(ctx, "SELECT mark, shards, data, saved_at FROM checkpoints WHERE name = ?", name).
		Scan(&mark, &c.Shards, &c.Data, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return StateCheckpoint{}, false, nil
	}
	if err != nil {
		return StateCheckpoint{}, false, fmt.Errorf("load checkpoint: %w", err)
	}
	c.Name, c.Mark, c.SavedAt = name, uint64(mark), fromNanos(at)
	return c, true, nil
}
