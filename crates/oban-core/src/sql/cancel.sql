-- Cancels job $1 unless it already finished, as Oban.cancel_job does (executing jobs too);
-- returns whether it was executing, in which case the caller sends a pkill signal.
WITH target AS (
  SELECT id, state = 'executing' AS was_executing
  FROM {prefix}.oban_jobs
  WHERE id = $1 AND state NOT IN ('completed', 'discarded', 'cancelled')
  FOR UPDATE
)
UPDATE {prefix}.oban_jobs AS j
SET state = 'cancelled', cancelled_at = timezone('UTC', now())
FROM target WHERE j.id = target.id
RETURNING target.was_executing
