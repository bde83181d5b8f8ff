-- The enqueued jobs (available or scheduled, what Oban.Testing's all_enqueued counts) that the
-- filter names (job_filter.sql, $1..$8), newest first, each with every column normalised as
-- get_job.sql returns it (for oban_core::testing).
SELECT j.id, j.state::text AS state, j.queue, j.worker, j.args, coalesce(j.meta, '{}') AS meta,
       coalesce(j.tags, '{}') AS tags, to_jsonb(j.errors) AS errors, j.attempt::int AS attempt,
       j.max_attempts::int AS max_attempts, j.priority::int AS priority, j.inserted_at,
       j.scheduled_at, j.attempted_at, j.attempted_by, j.completed_at, j.cancelled_at,
       j.discarded_at
FROM {prefix}.oban_jobs AS j
WHERE {job_filter}
  AND j.state IN ('available', 'scheduled')
ORDER BY j.id DESC
