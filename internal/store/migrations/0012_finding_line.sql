-- 0012: a stored finding's line of evidence within its detector
-- (event.Finding.Line, '' for the detector as one line) and whether it is
-- about a privileged principal (event.Finding.Privileged: the alert stage
-- weighs the entity's risk by alerts.privileged_multiplier), so `haechi
-- explain` scores stored findings as the alert stage did.

ALTER TABLE finding_log ADD COLUMN line TEXT NOT NULL DEFAULT '';
ALTER TABLE finding_log ADD COLUMN privileged INTEGER NOT NULL DEFAULT 0;
