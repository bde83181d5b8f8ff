-- Records the outcomes of a batch of finished jobs, and inserts the follow-up jobs of those that
-- completed, in one statement and therefore one transaction.
--
-- Guard (as oban-py 0.7): a row is updated only while it is still `executing` with the
-- attempted_at of the claim this node made. A job that was rescued, re-claimed, cancelled by a
-- dashboard or deleted meanwhile is left alone, and the follow-up jobs of a skipped ack are not
-- inserted: a follow-up exists exactly when its parent's completion was recorded.
--
-- Timestamps come from the database clock. Error entries are {attempt, at, error} with `at` in
-- Elixir's form (six fractional digits, Z) and are appended with `||`, which appends to both the
-- jsonb[] column of Elixir-created schemas and the jsonb array of oban-py-created ones.
-- A snooze (state scheduled) gives the attempt back and counts itself in meta.snoozed.
WITH outcome AS (
  SELECT *
  FROM unnest($1::bigint[], $2::timestamp[], $3::text[], $4::float8[], $5::text[])
    AS o(id, attempted_at, state, delay_seconds, error)
), acked AS (
  UPDATE {prefix}.oban_jobs AS j SET
    state = o.state::{prefix}.oban_job_state,
    completed_at = CASE WHEN o.state = 'completed' THEN timezone('UTC', now()) ELSE j.completed_at END,
    discarded_at = CASE WHEN o.state = 'discarded' THEN timezone('UTC', now()) ELSE j.discarded_at END,
    cancelled_at = CASE WHEN o.state = 'cancelled' THEN timezone('UTC', now()) ELSE j.cancelled_at END,
    scheduled_at = CASE WHEN o.delay_seconds IS NULL THEN j.scheduled_at
                        ELSE timezone('UTC', now()) + make_interval(secs => o.delay_seconds) END,
    errors = CASE WHEN o.error IS NULL THEN j.errors
                  ELSE j.errors || jsonb_build_object(
                    'attempt', j.attempt,
                    'at', to_char(timezone('UTC', now()), 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                    'error', o.error) END,
    attempt = CASE WHEN o.state = 'scheduled' THEN j.attempt - 1 ELSE j.attempt END,
    meta = CASE WHEN o.state = 'scheduled'
                THEN coalesce(j.meta, '{}') || jsonb_build_object(
                  'snoozed', coalesce((j.meta ->> 'snoozed')::int, 0) + 1)
                ELSE j.meta END
  FROM outcome AS o
  WHERE j.id = o.id AND j.state = 'executing' AND j.attempted_at = o.attempted_at
  RETURNING j.id
), new_jobs AS (
  SELECT n.worker, n.queue, n.args, n.max_attempts, n.priority, n.scheduled_at, n.tags, n.meta
  FROM unnest($6::bigint[], $7::text[], $8::text[], $9::jsonb[], $10::int[], $11::int[],
              $12::timestamp[], $13::jsonb[], $14::jsonb[])
    AS n(parent_id, worker, queue, args, max_attempts, priority, scheduled_at, tags, meta)
  WHERE n.parent_id IN (SELECT id FROM acked)
), {insert_jobs}
SELECT coalesce((SELECT array_agg(id) FROM acked), '{}') AS acked,
       (SELECT count(*) FROM inserted) AS inserted,
       (SELECT count(*) FROM announced) AS announced
