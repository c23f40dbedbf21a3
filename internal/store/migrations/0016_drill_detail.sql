-- 0016: what a drill run produced, kept with the run and nowhere else
-- (docs/drills.md): a JSON object with the run's alerts (each with its
-- findings), its other scored findings and the actions the planner planned
-- for it. Runs stored before have ''.

ALTER TABLE drill_runs ADD COLUMN detail TEXT NOT NULL DEFAULT '';
