-- Oban schema version 12: any non-negative priority is allowed (checked for new rows only, so
-- the constraint is NOT VALID), and the notification trigger goes away: from here on the
-- inserting client sends the insert notification itself.

ALTER TABLE {prefix}.oban_jobs DROP CONSTRAINT IF EXISTS priority_range;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conrelid = '{prefix}.oban_jobs'::regclass
                   AND conname = 'non_negative_priority') THEN
    ALTER TABLE {prefix}.oban_jobs ADD CONSTRAINT non_negative_priority
      CHECK (priority >= 0) NOT VALID;
  END IF;
END
$$;

DROP TRIGGER IF EXISTS oban_notify ON {prefix}.oban_jobs;
DROP FUNCTION IF EXISTS {prefix}.oban_jobs_notify();
