-- Deletes at most $3 finished jobs of the given queues ($1) that finished before now - $2
-- seconds (by completed_at, cancelled_at or discarded_at, as oban-py's Pruner), lowest ids
-- first. SKIP LOCKED keeps it out of the way of any other pruner.
DELETE FROM {prefix}.oban_jobs
WHERE id IN (
  SELECT id FROM {prefix}.oban_jobs
  WHERE queue = ANY($1)
    AND ((state = 'completed' AND completed_at <= timezone('UTC', now()) - make_interval(secs => $2))
      OR (state = 'cancelled' AND cancelled_at <= timezone('UTC', now()) - make_interval(secs => $2))
      OR (state = 'discarded' AND discarded_at <= timezone('UTC', now()) - make_interval(secs => $2)))
  ORDER BY id
  LIMIT $3
  FOR UPDATE SKIP LOCKED
)
