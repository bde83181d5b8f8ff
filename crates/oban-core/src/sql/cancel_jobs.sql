-- Cancels the filtered jobs (job_filter.sql, $1..$8) that have not finished, as
-- Oban.cancel_all_jobs does: executing ones too, at once, with cancelled_at now. Returns each
-- cancelled id and whether it was executing, for which the caller sends a pkill signal so
-- that the node running it stops it. The rows are locked first, so a job acked meanwhile is
-- judged in its new state.
WITH target AS (
  SELECT j.id, j.state = 'executing' AS was_executing
  FROM {prefix}.oban_jobs AS j
  WHERE {job_filter}
    AND j.state NOT IN ('completed', 'discarded', 'cancelled')
  FOR UPDATE
)
UPDATE {prefix}.oban_jobs AS j
SET state = 'cancelled', cancelled_at = timezone('UTC', now())
FROM target
WHERE j.id = target.id
RETURNING j.id, target.was_executing
