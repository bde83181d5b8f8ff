-- Job $1 with every column, whichever runtime wrote it; no row when it does not exist. Columns
-- whose types differ between Elixir- and Python-created schemas are normalised as claim.sql
-- normalises them (errors as a jsonb array, integers as int, absent tags/meta as empty).
SELECT id, state::text AS state, queue, worker, args, coalesce(meta, '{}') AS meta,
       coalesce(tags, '{}') AS tags, to_jsonb(errors) AS errors, attempt::int AS attempt,
       max_attempts::int AS max_attempts, priority::int AS priority, inserted_at, scheduled_at,
       attempted_at, attempted_by, completed_at, cancelled_at, discarded_at
FROM {prefix}.oban_jobs
WHERE id = $1
