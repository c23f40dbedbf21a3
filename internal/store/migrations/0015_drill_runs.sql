-- 0015: serve's drill runs (internal/drill, docs/drills.md): one row per
-- run with its verdict. Times are UTC unix nanoseconds; alerts is a JSON
-- array of alert ids; entity is "kind:id" of the drill's entity.
CREATE TABLE drill_runs (
	run              TEXT PRIMARY KEY,
	drill            TEXT NOT NULL,
	kind             TEXT NOT NULL DEFAULT '',
	started          INTEGER NOT NULL,
	status           TEXT NOT NULL,
	reason           TEXT NOT NULL DEFAULT '',
	time_to_alert_ns INTEGER NOT NULL DEFAULT 0,
	alerts           TEXT NOT NULL DEFAULT '[]',
	entity           TEXT NOT NULL DEFAULT ''
);
CREATE INDEX drill_runs_started_idx ON drill_runs (started, run);
