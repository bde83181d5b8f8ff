-- Changes the fields of job $1 that are given (not NULL), as Oban.update_job does: $2 args,
-- $3 max_attempts, $4 meta, $5 priority, $6 queue, $7 scheduled_at, $8 tags (a jsonb array),
-- $9 worker. A new scheduled_at makes a job that waits to run (available, scheduled or
-- retryable) `scheduled`, for the stager to release at that time; an executing or finished
-- job keeps its state. Returns the job as get_job.sql does, or nothing if it does not exist.
UPDATE {prefix}.oban_jobs AS j SET
  args = coalesce($2::jsonb, j.args),
  max_attempts = coalesce($3::int, j.max_attempts),
  meta = coalesce($4::jsonb, j.meta),
  priority = coalesce($5::int, j.priority),
  queue = coalesce($6::text, j.queue),
  scheduled_at = coalesce($7::timestamp, j.scheduled_at),
  state = CASE WHEN $7::timestamp IS NOT NULL AND j.state IN ('available', 'scheduled', 'retryable')
               THEN 'scheduled'::{prefix}.oban_job_state ELSE j.state END,
  tags = CASE WHEN $8::jsonb IS NULL THEN j.tags ELSE ARRAY(SELECT jsonb_array_elements_text($8::jsonb)) END,
  worker = coalesce($9::text, j.worker)
WHERE j.id = $1
RETURNING j.id, j.state::text AS state, j.queue, j.worker, j.args, coalesce(j.meta, '{}') AS meta,
          coalesce(j.tags, '{}') AS tags, to_jsonb(j.errors) AS errors, j.attempt::int AS attempt,
          j.max_attempts::int AS max_attempts, j.priority::int AS priority, j.inserted_at,
          j.scheduled_at, j.attempted_at, j.attempted_by, j.completed_at, j.cancelled_at,
          j.discarded_at
