-- Oban schema version 10: args defaults to {}, priority is required, range checks guard rows
-- written by bulk inserts, legacy indexes go and GIN indexes on args and meta arrive.

ALTER TABLE {prefix}.oban_jobs
  ALTER COLUMN args SET DEFAULT '{}',
  ALTER COLUMN priority SET NOT NULL;

DO $$
BEGIN
  -- Skipped when v12's replacement is already there (the range check is dropped by v12).
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conrelid = '{prefix}.oban_jobs'::regclass
                   AND conname IN ('priority_range', 'non_negative_priority')) THEN
    ALTER TABLE {prefix}.oban_jobs ADD CONSTRAINT priority_range
      CHECK (priority BETWEEN 0 AND 3);
  END IF;

  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conrelid = '{prefix}.oban_jobs'::regclass
                   AND conname = 'positive_max_attempts') THEN
    ALTER TABLE {prefix}.oban_jobs ADD CONSTRAINT positive_max_attempts
      CHECK (max_attempts > 0);
  END IF;

  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conrelid = '{prefix}.oban_jobs'::regclass
                   AND conname = 'attempt_range') THEN
    ALTER TABLE {prefix}.oban_jobs ADD CONSTRAINT attempt_range
      CHECK (attempt BETWEEN 0 AND max_attempts);
  END IF;
END
$$;

DROP INDEX IF EXISTS {prefix}.oban_jobs_args_vector;
DROP INDEX IF EXISTS {prefix}.oban_jobs_worker_gist;
DROP INDEX IF EXISTS {prefix}.oban_jobs_attempted_at_id_index;

-- Unique-job lookups filter on args and meta; GIN keeps them fast on large tables.
CREATE INDEX IF NOT EXISTS oban_jobs_args_index ON {prefix}.oban_jobs USING gin (args);
CREATE INDEX IF NOT EXISTS oban_jobs_meta_index ON {prefix}.oban_jobs USING gin (meta);
