-- 0004: findings carry tags (e.g. MITRE ATT&CK ids from rules) and related
-- entities (e.g. the source addresses of forged requests in a finding about
-- a signing key), so playbooks can match tags and contain related sources.
-- Both are JSON arrays; '[]' when none.

ALTER TABLE findings ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE findings ADD COLUMN related TEXT NOT NULL DEFAULT '[]';
