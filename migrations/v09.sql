-- Oban schema version 9: meta, cancelled_at and the `cancelled` state.
--
-- The new enum label cannot be used in the transaction that adds it (PostgreSQL rule); no
-- later step uses it, and workers only start after the migration has committed.

ALTER TABLE {prefix}.oban_jobs
  ADD COLUMN IF NOT EXISTS meta jsonb DEFAULT '{}',
  ADD COLUMN IF NOT EXISTS cancelled_at timestamp;

ALTER TYPE {prefix}.oban_job_state ADD VALUE IF NOT EXISTS 'cancelled';

CREATE INDEX IF NOT EXISTS oban_jobs_state_queue_priority_scheduled_at_id_index
  ON {prefix}.oban_jobs (state, queue, priority, scheduled_at, id);
