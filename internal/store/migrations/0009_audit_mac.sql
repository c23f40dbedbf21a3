-- 0009: the audit log's per-entry scheme. 0: hash is the plain SHA-256 of
-- the entry (every entry written before this migration); 1: hash is an
-- HMAC-SHA-256 keyed by the audit key, which lives outside the database
-- (store.AuditMAC, docs/response.md). prev_hash keeps holding the previous
-- entry's hash, whatever its scheme.
ALTER TABLE audit ADD COLUMN scheme INTEGER NOT NULL DEFAULT 0;
