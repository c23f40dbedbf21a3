-- 0005: triage. Analysts' verdicts on alerts (feedback) and suppressions
-- (an entity, optionally one detector, until a time: its alerts are still
-- stored but no response is planned for them). Times are UTC unix
-- nanoseconds; every change is also in the audit log.

-- On PostgreSQL feedback also gets the column SQLite gives every table
-- implicitly, rowid (insertion order: ListFeedback orders by at, rowid).
CREATE TABLE feedback (
	-- postgres: rowid INTEGER GENERATED ALWAYS AS IDENTITY,
	alert_id TEXT NOT NULL,
	verdict  TEXT NOT NULL,           -- true_positive, false_positive, benign
	note     TEXT NOT NULL DEFAULT '',
	by       TEXT NOT NULL DEFAULT '',
	at       INTEGER NOT NULL
);
CREATE INDEX feedback_alert_idx ON feedback (alert_id, at);

CREATE TABLE suppressions (
	id          TEXT PRIMARY KEY,
	entity_kind TEXT NOT NULL,
	entity_id   TEXT NOT NULL,
	detector    TEXT NOT NULL DEFAULT '', -- '' → every detector
	until       INTEGER NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	by          TEXT NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	removed     INTEGER NOT NULL DEFAULT 0 -- non-zero: lifted at that time
);
CREATE INDEX suppressions_entity_idx ON suppressions (entity_kind, entity_id);
