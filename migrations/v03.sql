-- Oban schema version 3: the nodes that attempted a job. (Oban once also created an
-- oban_beats table here; current Oban no longer does, and neither do we.)

ALTER TABLE {prefix}.oban_jobs ADD COLUMN IF NOT EXISTS attempted_by text[];
