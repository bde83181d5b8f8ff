-- Makes due scheduled and retryable jobs of the given queues ($1) available, at most $2 per
-- run, oldest first. SKIP LOCKED: another stager (an Elixir or Python leader) working on the
-- same rows is skipped, never waited for. Returns how many were staged.
WITH due AS (
  SELECT id
  FROM {prefix}.oban_jobs
  WHERE state IN ('scheduled', 'retryable')
    AND queue = ANY($1)
    AND scheduled_at <= timezone('UTC', now())
  ORDER BY scheduled_at, id
  LIMIT $2
  FOR UPDATE SKIP LOCKED
), staged AS (
  UPDATE {prefix}.oban_jobs AS j SET state = 'available'
  FROM due WHERE j.id = due.id
  RETURNING j.id
)
SELECT count(*) FROM staged
