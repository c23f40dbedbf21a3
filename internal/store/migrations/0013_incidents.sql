-- 0013: incidents kept as alerts are stored (internal/incident/track,
-- docs/alerts.md "Incidents"). Times are UTC unix nanoseconds.
--
-- incidents: one row per current incident; body is its JSON (founding
-- entity, alert ids, timeline, entity graph). state is open, contained or
-- closed; verdict the analyst's (true_positive, false_positive, benign).
CREATE TABLE incidents (
	id           TEXT PRIMARY KEY,
	founder      TEXT NOT NULL,            -- the founding (earliest) alert's id
	start_time   INTEGER NOT NULL,
	end_time     INTEGER NOT NULL,
	severity     INTEGER NOT NULL DEFAULT 0,
	state        TEXT NOT NULL DEFAULT 'open',
	verdict      TEXT NOT NULL DEFAULT '',
	verdict_note TEXT NOT NULL DEFAULT '',
	verdict_by   TEXT NOT NULL DEFAULT '',
	verdict_at   INTEGER NOT NULL DEFAULT 0,
	title        TEXT NOT NULL DEFAULT '',
	attack       TEXT NOT NULL DEFAULT '',
	alert_count  INTEGER NOT NULL DEFAULT 0,
	entities     TEXT NOT NULL DEFAULT '[]', -- JSON: the entities its scope covers
	body         TEXT NOT NULL DEFAULT '{}',
	created_at   INTEGER NOT NULL DEFAULT 0, -- wall time
	updated_at   INTEGER NOT NULL DEFAULT 0  -- wall time
);
-- Newest-first listing walks this index backwards.
CREATE INDEX incidents_start_idx ON incidents (start_time, id);

-- Which incident each alert is in.
CREATE TABLE incident_alerts (
	alert_id    TEXT PRIMARY KEY,
	incident_id TEXT NOT NULL
);
CREATE INDEX incident_alerts_incident_idx ON incident_alerts (incident_id, alert_id);

-- The join keys of each alert (incident.JoinKeys, hashed): the incidents a
-- new alert may join are those of the alerts sharing a key with it. cited
-- is 1 for a key the alert only cites (it joins through alerts naming it).
CREATE TABLE incident_keys (
	join_key TEXT NOT NULL,
	alert_id TEXT NOT NULL,
	cited    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (join_key, alert_id)
) WITHOUT ROWID;
CREATE INDEX incident_keys_alert_idx ON incident_keys (alert_id);

-- An id that is no longer an incident's (merged into an older one, or
-- refounded by a late earlier alert) resolves through its founding alert
-- to the incident that alert is in now, else (the founder was withdrawn)
-- to its successor, the incident that took its other alerts.
CREATE TABLE incident_aliases (
	alias     TEXT PRIMARY KEY,
	founder   TEXT NOT NULL,
	successor TEXT NOT NULL DEFAULT ''
);

-- What the events findings cite were (event.Citation), first citation
-- wins: incident grouping's facts, kept without the stream.
CREATE TABLE citations (
	ref        TEXT PRIMARY KEY,
	success    INTEGER NOT NULL DEFAULT 0,
	principal  TEXT NOT NULL DEFAULT '',
	token      TEXT NOT NULL DEFAULT '',
	key_id     TEXT NOT NULL DEFAULT '',
	source     TEXT NOT NULL DEFAULT '',
	asn        INTEGER NOT NULL DEFAULT 0,
	user_agent TEXT NOT NULL DEFAULT ''
);
CREATE INDEX citations_source_idx ON citations (source, principal);
