-- 0011: every finding the alert stage scored, alerting or not (the risk
-- index): its figures, the risk it added (contribution), the entity's risk
-- after it and the threshold it was held against, the alert it raised or
-- joined ('' when it stayed below the threshold) and whether a suppression
-- covered it. The id is a hash of the finding (store.FindingID), so a
-- replay stores each finding once. Rows older than
-- alerts.findings_retention are pruned (PruneFindings). Times are UTC unix
-- nanoseconds; tags, related, evidence and figures are JSON arrays.

CREATE TABLE finding_log (
	id           TEXT PRIMARY KEY,
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
	suppressed   INTEGER NOT NULL DEFAULT 0
);

-- Newest-first listing (and pruning) walks this index.
CREATE INDEX finding_log_time_idx ON finding_log (time, id);
-- Per entity and per detector; (time, id) keep the order sort-free.
CREATE INDEX finding_log_entity_idx ON finding_log (entity_kind, entity_id, time, id);
CREATE INDEX finding_log_detector_idx ON finding_log (detector, time, id);
