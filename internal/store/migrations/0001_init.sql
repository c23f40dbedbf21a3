-- 0001: alerts and their stored findings.
-- Times are UTC unix nanoseconds; 0 is the zero time.

CREATE TABLE alerts (
	id            TEXT PRIMARY KEY,
	time          INTEGER NOT NULL,
	entity_kind   TEXT NOT NULL DEFAULT '',
	entity_id     TEXT NOT NULL DEFAULT '',
	detector      TEXT NOT NULL DEFAULT '',
	severity      INTEGER NOT NULL DEFAULT 0,
	score         REAL,
	title         TEXT NOT NULL DEFAULT '',
	explanation   TEXT NOT NULL DEFAULT '',
	state         TEXT NOT NULL DEFAULT '',
	window_start  INTEGER NOT NULL DEFAULT 0,
	window_end    INTEGER NOT NULL DEFAULT 0,
	last_time     INTEGER NOT NULL DEFAULT 0,
	finding_count INTEGER NOT NULL DEFAULT 0,
	updated_at    INTEGER NOT NULL DEFAULT 0
);

-- Newest-first listing walks this index backwards.
CREATE INDEX alerts_time_idx ON alerts (time, id);
-- Per-entity listing; (time, id) keep the newest-first order sort-free.
CREATE INDEX alerts_entity_idx ON alerts (entity_kind, entity_id, time, id);

CREATE TABLE findings (
	alert_id    TEXT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
	seq         INTEGER NOT NULL,
	detector    TEXT NOT NULL DEFAULT '',
	kind        TEXT NOT NULL DEFAULT '',
	title       TEXT NOT NULL DEFAULT '',
	entity_kind TEXT NOT NULL DEFAULT '',
	entity_id   TEXT NOT NULL DEFAULT '',
	time        INTEGER NOT NULL DEFAULT 0,
	score       REAL,
	severity    INTEGER NOT NULL DEFAULT 0,
	explanation TEXT NOT NULL DEFAULT '',
	evidence    TEXT NOT NULL DEFAULT '[]', -- JSON array of event refs
	PRIMARY KEY (alert_id, seq)
) WITHOUT ROWID;
