-- 0008: the access ledger, one row per (dimension, value, UTC day). cells
-- holds every (record type, field category) cell of that day — its roaring
-- bitmap and first/last access — in one blob (internal/store/ledgercells.go),
-- where 0003 kept one row per cell: a customer's day was five to eight rows
-- (the type's whole set, then name, phone, email, address…), mostly of the
-- same one record, and their keys and the index on them were most of the
-- store. Rows of the old table are converted by the migration's Go step,
-- which then drops it.

CREATE TABLE ledger_days (
	dim   TEXT NOT NULL,
	value TEXT NOT NULL,
	day   INTEGER NOT NULL, -- days since 1970-01-01 (UTC)
	cells BLOB NOT NULL,
	PRIMARY KEY (dim, value, day)
) WITHOUT ROWID;

-- Scope over a window for a dimension without naming values (CIDR match).
CREATE INDEX ledger_days_dim_day_idx ON ledger_days (dim, day, value);
