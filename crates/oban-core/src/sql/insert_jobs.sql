-- Inserts a batch of new jobs and announces their queues; shared by `insert_all` and the
-- unique insert (insert.rs), the cron scheduler (cron.rs) and the ack of completed jobs that
-- insert follow-up jobs (ack.rs), which prepend a CTE named `new_jobs` with these columns:
--   worker, queue, args, max_attempts, priority, scheduled_at, tags (jsonb array), meta
-- Rows are written like Oban.insert_all writes them: ON CONFLICT DO NOTHING, `attempt`, `errors`,
-- `inserted_at` and `id` left to the table's defaults, state `scheduled` exactly when a
-- scheduled_at was given. pg_notify runs inside the statement, so in a transaction the
-- `{"queue":Q}` notification is delivered at commit, and PostgreSQL folds duplicates: each queue
-- that received an available job is announced once, in the payload form Elixir sends.
inserted AS (
  INSERT INTO {prefix}.oban_jobs (args, max_attempts, meta, queue, state, tags, worker, priority, scheduled_at)
  SELECT args, max_attempts, meta, queue,
         (CASE WHEN scheduled_at IS NULL THEN 'available' ELSE 'scheduled' END)::{prefix}.oban_job_state,
         ARRAY(SELECT jsonb_array_elements_text(tags)),
         worker,
         coalesce(priority, 0),
         coalesce(scheduled_at, timezone('UTC', now()))
  FROM new_jobs
  ON CONFLICT DO NOTHING
  RETURNING id, queue, state::text AS state, scheduled_at
), announced AS (
  SELECT pg_notify($channel, '{"queue":' || to_json(queue)::text || '}')
  FROM (SELECT DISTINCT queue FROM inserted WHERE state = 'available') AS queues
)
