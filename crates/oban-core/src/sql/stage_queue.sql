-- Makes the scheduled and retryable jobs of queue $1 available, those scheduled at or before
-- $2 or, when $2 is NULL, every one, whatever its time: drain_queue's `with_scheduled`, as
-- Oban's Drainer stages them. Returns how many.
WITH staged AS (
  UPDATE {prefix}.oban_jobs
  SET state = 'available'
  WHERE queue = $1
    AND state IN ('scheduled', 'retryable')
    AND ($2::timestamp IS NULL OR scheduled_at <= $2::timestamp)
  RETURNING id
)
SELECT count(*) FROM staged
