-- Inserts the jobs of the cron entries due at one tick ($9, UTC): an entry that already has a
-- job inserted since the tick began (by any node: a second leader for a moment, or this one
-- before a restart) gets none, so each entry has at most one job per tick. Runs after
-- lock_cron_entries.sql in the same transaction, so its snapshot sees every earlier insert of
-- the tick. Rows are written as insert_jobs.sql writes them; $10 is the insert channel.
WITH candidates AS (
  SELECT *
  FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::timestamp[], $7::jsonb[], $8::jsonb[])
    AS n(worker, queue, args, max_attempts, priority, scheduled_at, tags, meta)
), new_jobs AS (
  SELECT c.*
  FROM candidates AS c
  WHERE NOT EXISTS (
    SELECT 1
    FROM {prefix}.oban_jobs AS j
    WHERE j.meta @> jsonb_build_object('cron_name', c.meta -> 'cron_name')
      AND j.inserted_at >= $9
  )
), {insert_jobs}
SELECT id FROM inserted
