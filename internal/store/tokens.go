package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// APIToken is a stored API token: who it is for and what it may do. The
// token itself is never stored, only its hash (see package auth).
type APIToken struct {
	ID       string    `json:"id"`
	Name     string    `json:"name"`
	Role     string    `json:"role"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitzero"`
	Revoked  time.Time `json:"revoked,omitzero"`
}

// Session is a console session, stored by the hash of its cookie and
// bound to the token that logged in.
type Session struct {
	Hash    string
	TokenID string
	CSRF    string
	Created time.Time
	Expires time.Time
}

const tokenColumns = `id, name, role, created_at, last_used, revoked_at` // #nosec G101 -- column names, not a credential

func scanToken(sc rowScanner) (APIToken, error) {
	var (
		t                      APIToken
		created, used, revoked int64
	)
	if err := sc.Scan(&t.ID, &t.Name, &t.Role, &created, &used, &revoked); err != nil {
		return APIToken{}, err
	}
	t.Created, t.LastUsed, t.Revoked = fromNanos(created), fromNanos(used), fromNanos(revoked)
	return t, nil
}

// CreateToken stores a token by its hash, with an audit entry naming it
// (never the hash), in one transaction. ID, Role and hash are required.
func (s *Store) CreateToken(ctx context.Context, t APIToken, hash string) error {
	if t.ID == "" || t.Role == "" || hash == "" {
		return errors.New("create token: id, role and hash are required")
	}
	err := s.auditTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, "INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)",
			t.ID, t.Name, t.Role, hash, toNanos(t.Created)); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, t.Created, "token_created", "", map[string]string{"id": t.ID, "name": t.Name, "role": t.Role})
	})
	if err != nil {
		return fmt.Errorf("create token: %w", err)
	}
	return nil
}

// CreateFirstToken stores t like CreateToken, but only when no active
// token exists, deciding in the same transaction (serialised with every
// other audited write), so two workers starting on a fresh shared
// database create one first token between them. created is false when a
// token already existed.
func (s *Store) CreateFirstToken(ctx context.Context, t APIToken, hash string) (created bool, err error) {
	if t.ID == "" || t.Role == "" || hash == "" {
		return false, errors.New("create token: id, role and hash are required")
	}
	err = s.auditTx(ctx, func(tx *sql.Tx) error {
		created = false
		var n int
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM api_tokens WHERE revoked_at = 0").Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO api_tokens (id, name, role, hash, created_at) VALUES (?, ?, ?, ?, ?)",
			t.ID, t.Name, t.Role, hash, toNanos(t.Created)); err != nil {
			return err
		}
		created = true
		return s.appendAudit(ctx, tx, t.Created, "token_created", "", map[string]string{"id": t.ID, "name": t.Name, "role": t.Role})
	})
	if err != nil {
		return false, fmt.Errorf("create first token: %w", err)
	}
	return created, nil
}

// TokenByHash returns the token stored with hash (revoked ones too: the
// caller checks Revoked), or ErrNotFound (wrapped).
func (s *Store) TokenByHash(ctx context.Context, hash string) (APIToken, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE hash = ?", hash))
	if errors.Is(err, sql.ErrNoRows) {
		return APIToken{}, fmt.Errorf("token: %w", ErrNotFound)
	}
	if err != nil {
		return APIToken{}, fmt.Errorf("token: %w", err)
	}
	return t, nil
}

// ListTokens returns every token, revoked ones included, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens ORDER BY created_at, id")
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []APIToken{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

// CountActiveTokens returns the number of tokens not revoked.
func (s *Store) CountActiveTokens(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM api_tokens WHERE revoked_at = 0").Scan(&n); err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return n, nil
}

// RevokeToken marks a token revoked and ends its sessions, with an audit
// entry naming by, in one transaction. An unknown or already revoked
// token is ErrNotFound (wrapped).
func (s *Store) RevokeToken(ctx context.Context, id, by string, now time.Time) error {
	err := s.auditTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at = 0", toNanos(now), id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("token %q (or it is already revoked): %w", id, ErrNotFound)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE token_id = ?", id); err != nil {
			return err
		}
		return s.appendAudit(ctx, tx, now, "token_revoked", "", map[string]string{"id": id, "by": by})
	})
	if err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// TouchToken records that a token was used at now.
func (s *Store) TouchToken(ctx context.Context, id string, now time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error { // not audited: no audit lock
		_, err := tx.ExecContext(ctx, "UPDATE api_tokens SET last_used = ? WHERE id = ?", toNanos(now), id)
		return err
	})
	if err != nil {
		return fmt.Errorf("touch token: %w", err)
	}
	return nil
}

// CreateSession stores a session.
func (s *Store) CreateSession(ctx context.Context, se Session) error {
	if se.Hash == "" || se.TokenID == "" || se.CSRF == "" {
		return errors.New("create session: hash, token and csrf are required")
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error { // not audited: no audit lock
		_, err := tx.ExecContext(ctx, "INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
			se.Hash, se.TokenID, se.CSRF, toNanos(se.Created), toNanos(se.Expires))
		return err
	})
	if err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	return nil
}

// SessionByHash returns the session stored with hash and its token, or
// ErrNotFound (wrapped). Expiry and revocation are the caller's to check.
func (s *Store) SessionByHash(ctx context.Context, hash string) (Session, APIToken, error) {
	var (
		se               Session
		created, expires int64
	)
	err := s.db.QueryRowContext(ctx, "SELECT hash, token_id, csrf, created_at, expires_at FROM sessions WHERE hash = ?", hash).
		Scan(&se.Hash, &se.TokenID, &se.CSRF, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, APIToken{}, fmt.Errorf("session: %w", ErrNotFound)
	}
	if err != nil {
		return Session{}, APIToken{}, fmt.Errorf("session: %w", err)
	}
	se.Created, se.Expires = fromNanos(created), fromNanos(expires)
	t, err := scanToken(s.db.QueryRowContext(ctx, "SELECT "+tokenColumns+" FROM api_tokens WHERE id = ?", se.TokenID))
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, APIToken{}, fmt.Errorf("session's token %q: %w", se.TokenID, ErrNotFound)
	}
	if err != nil {
		return Session{}, APIToken{}, fmt.Errorf("session: %w", err)
	}
	return se, t, nil
}

// DeleteSession removes a session (logging out); a missing one is not an
// error.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error { // not audited: no audit lock
		_, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE hash = ?", hash)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return nil
}

// DeleteExpiredSessions removes the sessions expired at now and returns
// how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error { // not audited: no audit lock
		res, err := tx.ExecContext(ctx, "DELETE FROM sessions WHERE expires_at <= ?", toNanos(now))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete expired sessions: %w", err)
	}
	return n, nil
}
