-- 0003: the access ledger (internal/ledger): per (dimension, value, UTC day,
-- record type, field category) a roaring bitmap of the record ids touched,
-- and the dictionary of record ids that are not small integers. It holds
-- ids, never record contents. field '' is the bitmap of all records of the
-- type touched that day. first/last are UTC unix nanoseconds.

CREATE TABLE ledger (
	dim    TEXT NOT NULL,
	value  TEXT NOT NULL,
	day    INTEGER NOT NULL, -- days since 1970-01-01 (UTC)
	rtype  TEXT NOT NULL,
	field  TEXT NOT NULL,
	bitmap BLOB NOT NULL,    -- portable roaring serialization
	first  INTEGER NOT NULL,
	last   INTEGER NOT NULL,
	PRIMARY KEY (dim, value, day, rtype, field)
) WITHOUT ROWID;

-- Scope over a window for a dimension without naming values (CIDR match).
CREATE INDEX ledger_dim_day_idx ON ledger (dim, day, value);

CREATE TABLE ledger_dict (
	id  INTEGER PRIMARY KEY,
	rid TEXT NOT NULL UNIQUE
);
