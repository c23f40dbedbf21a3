-- 0014: the country of a cited event (event.Citation.Country,
-- source.geo.country_iso_code; '' when unknown), so incident grouping can
-- tell a stolen-token thief's data centres in one foreign country apart
-- from a crowd (docs/alerts.md, "Stolen-token campaigns"). Citations
-- stored before have ''.

ALTER TABLE citations ADD COLUMN country TEXT NOT NULL DEFAULT '';
