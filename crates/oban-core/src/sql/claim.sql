-- Claims up to $2 available jobs of queue $1 for one producer, as Oban's Basic engine does.
-- The CTE picks the jobs in priority, scheduled_at, id order and locks them FOR UPDATE SKIP
-- LOCKED, so concurrent producers on any node (Elixir, Python or Rust) never claim the same row
-- and never wait on each other; it also fences the planner so that no more than $2 rows are
-- updated. Jobs that have used up their attempts are locked but left alone (the attempt guard).
-- attempted_at comes from the database clock; the ack is guarded on it.
-- The locked ids are handed to the UPDATE as one array, so it finds its rows through the
-- primary key: joined to the CTE instead, a large $2 makes the planner hash the whole table
-- (finished jobs included) on every claim. The claimed jobs are returned in claim order.
-- The limit is a sub-select so that no plan knows its value: PostgreSQL then settles on one
-- generic plan (the same index scans) instead of planning every claim anew, which it does
-- for a bare `LIMIT $2` because a plan that knows a small limit always looks cheaper.
WITH subset AS (
  SELECT id
  FROM {prefix}.oban_jobs
  WHERE state = 'available' AND queue = $1
  ORDER BY priority ASC, scheduled_at ASC, id ASC
  LIMIT (SELECT $2::bigint)
  FOR UPDATE SKIP LOCKED
), claimed AS (
  UPDATE {prefix}.oban_jobs AS j
  SET state = 'executing',
      attempted_at = timezone('UTC', now()),
      attempted_by = $3::text[],
      attempt = j.attempt + 1
  WHERE j.id = ANY(ARRAY(SELECT id FROM subset)) AND j.attempt < j.max_attempts
  RETURNING j.id, j.queue, j.worker, j.args, to_jsonb(j.errors) AS errors, j.attempt::int AS attempt,
            j.max_attempts::int AS max_attempts, j.priority::int AS priority,
            coalesce(j.tags, '{}') AS tags, coalesce(j.meta, '{}') AS meta, j.inserted_at,
            j.scheduled_at, j.attempted_at, j.attempted_by
)
SELECT * FROM claimed ORDER BY priority, scheduled_at, id
