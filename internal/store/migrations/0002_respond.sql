-- 0002: automated response — the action outbox and the hash-chained audit log.
-- Times are UTC unix nanoseconds; 0 is the zero time.

-- One row per containment or notification action. The id is the action's
-- idempotency key (a hash of alert id, action kind and target), so planning
-- the same action twice inserts it once.
CREATE TABLE actions (
	id           TEXT PRIMARY KEY,
	kind         TEXT NOT NULL,
	target       TEXT NOT NULL DEFAULT '',
	alert_id     TEXT NOT NULL DEFAULT '',
	playbook     TEXT NOT NULL DEFAULT '',
	receiver     TEXT NOT NULL DEFAULT '',
	state        TEXT NOT NULL,
	reason       TEXT NOT NULL DEFAULT '',
	attempts     INTEGER NOT NULL DEFAULT 0,
	next_attempt INTEGER NOT NULL DEFAULT 0,
	created_at   INTEGER NOT NULL DEFAULT 0, -- event time of the alert
	enqueued_at  INTEGER NOT NULL DEFAULT 0, -- wall clock when written
	updated_at   INTEGER NOT NULL DEFAULT 0,
	last_error   TEXT NOT NULL DEFAULT '',
	payload      TEXT NOT NULL DEFAULT '{}'
);

-- Claiming due actions scans by state then next attempt.
CREATE INDEX actions_due_idx ON actions (state, next_attempt);
CREATE INDEX actions_kind_idx ON actions (kind, created_at);

-- Append-only audit log: each entry's hash covers its fields and the
-- previous entry's hash.
CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY,
	time      INTEGER NOT NULL,
	kind      TEXT NOT NULL,
	action_id TEXT NOT NULL DEFAULT '',
	detail    TEXT NOT NULL DEFAULT '{}',
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);

CREATE INDEX audit_action_idx ON audit (action_id, seq);
