-- Makes the filtered jobs (job_filter.sql, $1..$8) runnable now, as Oban.retry_all_jobs does:
-- every one not available or executing becomes available with scheduled_at now, its
-- completed/cancelled/discarded_at cleared and max_attempts raised to attempt + 1 if it was
-- used up. The rows are locked first, so a job acked meanwhile is judged in its new state.
-- Each queue that got a job is announced on $9 ({"queue":Q}, as an insert is), so nodes run
-- it without waiting for their next poll. Returns the retried ids.
WITH target AS (
  SELECT j.id
  FROM {prefix}.oban_jobs AS j
  WHERE {job_filter}
    AND j.state NOT IN ('available', 'executing')
  FOR UPDATE
), retried AS (
  UPDATE {prefix}.oban_jobs AS j
  SET state = 'available',
      max_attempts = greatest(j.max_attempts, j.attempt + 1),
      scheduled_at = timezone('UTC', now()),
      completed_at = NULL,
      cancelled_at = NULL,
      discarded_at = NULL
  FROM target
  WHERE j.id = target.id
  RETURNING j.id, j.queue
), announced AS (
  SELECT pg_notify($9, '{"queue":' || to_json(queue)::text || '}')
  FROM (SELECT DISTINCT queue FROM retried) AS queues
)
SELECT id, (SELECT count(*) FROM announced) AS announced
FROM retried
