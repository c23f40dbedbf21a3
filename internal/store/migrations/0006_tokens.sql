-- 0006: access control. API tokens (stored as the hex SHA-256 of the
-- token, never the token itself) with a role, and console sessions
-- (stored as the hex SHA-256 of the session cookie) bound to the token
-- that logged in. Times are UTC unix nanoseconds; 0 is the zero time.

CREATE TABLE api_tokens (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL DEFAULT '',
	role       TEXT NOT NULL,            -- ingest, analyst, admin
	hash       TEXT NOT NULL UNIQUE,     -- hex SHA-256 of the token
	created_at INTEGER NOT NULL,
	last_used  INTEGER NOT NULL DEFAULT 0,
	revoked_at INTEGER NOT NULL DEFAULT 0 -- non-zero: revoked at that time
);

CREATE TABLE sessions (
	hash       TEXT PRIMARY KEY,         -- hex SHA-256 of the session cookie
	token_id   TEXT NOT NULL,
	csrf       TEXT NOT NULL,            -- the session's CSRF token
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);
CREATE INDEX sessions_token_idx ON sessions (token_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
