-- Oban schema version 2: a partial scheduled_at index, length checks on worker and queue, and
-- the oban_wrap_id helper (dropped again by v04).

-- Only available and scheduled jobs are looked up by time, so the index is partial.
DROP INDEX IF EXISTS {prefix}.oban_jobs_scheduled_at_index;
CREATE INDEX oban_jobs_scheduled_at_index ON {prefix}.oban_jobs (scheduled_at)
  WHERE state IN ('available'::{prefix}.oban_job_state, 'scheduled'::{prefix}.oban_job_state);

-- PostgreSQL has no ADD CONSTRAINT IF NOT EXISTS; look the name up instead so a rerun (or a
-- table that already has the checks) is left alone.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conrelid = '{prefix}.oban_jobs'::regclass AND conname = 'worker_length') THEN
    ALTER TABLE {prefix}.oban_jobs ADD CONSTRAINT worker_length
      CHECK (char_length(worker) > 0 AND char_length(worker) < 128);
  END IF;

  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                 WHERE conrelid = '{prefix}.oban_jobs'::regclass AND conname = 'queue_length') THEN
    ALTER TABLE {prefix}.oban_jobs ADD CONSTRAINT queue_length
      CHECK (char_length(queue) > 0 AND char_length(queue) < 128);
  END IF;
END
$$;

CREATE OR REPLACE FUNCTION {prefix}.oban_wrap_id(value bigint) RETURNS int AS $$
BEGIN
  RETURN (CASE WHEN value > 2147483647 THEN mod(value, 2147483647) ELSE value END)::int;
END;
$$ LANGUAGE plpgsql IMMUTABLE;
