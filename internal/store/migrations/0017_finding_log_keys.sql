-- 0017: the risk index keyed by integers (issue 22). A finding's id is
-- stored as the integer of its event.FindingID with the top bit flipped
-- (findingKey), so the integers order as the "fd-%016x" texts did, and the
-- table keeps its rowid: rows are appended, not inserted at a hash. The
-- text primary key and its index (one random B-tree insert a finding) are
-- gone: a finding's time is part of its id's hash, so (time, id) is as
-- unique as the id and its index, needed for the newest-first listing
-- anyway, is the upsert's conflict target. Per entity and per detector as
-- before. The stored rows are copied over by a Go step (finding_log_v16
-- → finding_log, then dropped), which parses the text ids.

ALTER TABLE finding_log RENAME TO finding_log_v16;
DROP INDEX finding_log_time_idx;
DROP INDEX finding_log_entity_idx;
DROP INDEX finding_log_detector_idx;

CREATE TABLE finding_log (
	id           INTEGER NOT NULL,
	time         INTEGER NOT NULL,
	entity_kind  TEXT NOT NULL DEFAULT '',
	entity_id    TEXT NOT NULL DEFAULT '',
	detector     TEXT NOT NULL DEFAULT '',
	kind         TEXT NOT NULL DEFAULT '',
	title        TEXT NOT NULL DEFAULT '',
	score        REAL,
	severity     INTEGER NOT NULL DEFAULT 0,
	explanation  TEXT NOT NULL DEFAULT '',
	evidence     TEXT NOT NULL DEFAULT '[]',
	tags         TEXT NOT NULL DEFAULT '[]',
	related      TEXT NOT NULL DEFAULT '[]',
	figures      TEXT NOT NULL DEFAULT '[]',
	contribution REAL NOT NULL DEFAULT 0,
	risk         REAL NOT NULL DEFAULT 0,
	threshold    REAL NOT NULL DEFAULT 0,
	alert_id     TEXT NOT NULL DEFAULT '',
	suppressed   INTEGER NOT NULL DEFAULT 0,
	line         TEXT NOT NULL DEFAULT '',
	privileged   INTEGER NOT NULL DEFAULT 0
);

-- The upsert's conflict target, the newest-first listing and pruning.
CREATE UNIQUE INDEX finding_log_time_idx ON finding_log (time, id);
-- Per entity and per detector; (time, id) keep the order sort-free.
CREATE INDEX finding_log_entity_idx ON finding_log (entity_kind, entity_id, time, id);
CREATE INDEX finding_log_detector_idx ON finding_log (detector, time, id);
