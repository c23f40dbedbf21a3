-- 0010: why the guardrails hold an action for a decision, as a code
-- (store.Hold) that authorisation rests on, beside reason, the sentence for
-- people. Actions stored before carry only the sentence: those held for a
-- protected principal, key or network are the ones whose reason begins with
-- "protected " (the planner wrote nothing else there).
ALTER TABLE actions ADD COLUMN hold TEXT NOT NULL DEFAULT '';
UPDATE actions SET hold = 'protected' WHERE substr(reason, 1, 10) = 'protected ';
