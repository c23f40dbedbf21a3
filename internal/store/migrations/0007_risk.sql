-- 0007: risk-based alerting and checkpointed detector state.
--
-- alerts.risk is the entity's accumulated risk when the alert was raised;
-- findings.contribution the risk each finding added and findings.figures
-- the measurements and baselines behind it (JSON array of {name, value};
-- '[]' when none). suppressions.kind narrows a suppression to one finding
-- kind ('' = every kind): an analyst's false-positive verdict suppresses
-- the entity's findings of the alert's kinds, which then add no risk.
--
-- checkpoints holds the learnt state of the detectors (baselines, profiles,
-- peer histograms) as of a spool offset (mark), one row per pipeline
-- (name), replaced by each new checkpoint: data is the encoded snapshot of
-- every shard (internal/app/checkpoint.go).

ALTER TABLE alerts ADD COLUMN risk REAL NOT NULL DEFAULT 0;
ALTER TABLE findings ADD COLUMN contribution REAL NOT NULL DEFAULT 0;
ALTER TABLE findings ADD COLUMN figures TEXT NOT NULL DEFAULT '[]';
ALTER TABLE suppressions ADD COLUMN kind TEXT NOT NULL DEFAULT '';
ALTER TABLE suppressions ADD COLUMN alert TEXT NOT NULL DEFAULT '';

CREATE TABLE checkpoints (
	name     TEXT PRIMARY KEY,
	mark     INTEGER NOT NULL,
	shards   INTEGER NOT NULL,
	data     BLOB NOT NULL,
	saved_at INTEGER NOT NULL
);
