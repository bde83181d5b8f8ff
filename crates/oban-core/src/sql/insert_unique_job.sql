-- Inserts one unique job unless a job matching it exists, by the rule of Oban's Basic engine
-- (unique.rs): one in the states of the spec $9, with inserted_at (or scheduled_at) within the
-- period (none for ever; the database clock here, the application clock in Elixir), and equal
-- on each compared field: queue and worker by equality, args and meta by jsonb containment
-- both ways (`*_exact`) or of the named keys' values. The job comes in the one-row arrays
-- $1..$8 of insert_jobs.sql; $10 is the insert channel.
-- Runs after lock_unique_jobs.sql in the same transaction. The match found first (lowest id)
-- is locked, and the fields that $9.replace lists for its state are overwritten with the new
-- job's (priority and scheduled_at only when the new job sets them). Returns one row: the new
-- job (conflict false), or the found one after any replace (conflict true).
WITH spec AS (
  SELECT $9::jsonb AS s
), candidate AS (
  SELECT *
  FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::timestamp[], $7::jsonb[], $8::jsonb[])
    AS n(worker, queue, args, max_attempts, priority, scheduled_at, tags, meta)
), found AS (
  SELECT j.id, j.queue, j.state::text AS state, j.scheduled_at,
         spec.s -> 'replace' -> (j.state::text) AS replace
  FROM {prefix}.oban_jobs AS j, spec
  WHERE (spec.s -> 'states') ? (j.state::text)
    AND (spec.s -> 'period' = 'null'
         OR (CASE WHEN (spec.s ->> 'by_scheduled_at')::boolean THEN j.scheduled_at ELSE j.inserted_at END)
            >= timezone('UTC', now()) - make_interval(secs => (spec.s ->> 'period')::float8))
    AND (NOT spec.s ? 'queue' OR j.queue = spec.s ->> 'queue')
    AND (NOT spec.s ? 'worker' OR j.worker = spec.s ->> 'worker')
    AND (NOT spec.s ? 'args'
         OR (j.args @> (spec.s -> 'args')
             AND (NOT (spec.s ->> 'args_exact')::boolean OR j.args <@ (spec.s -> 'args'))))
    AND (NOT spec.s ? 'meta'
         OR (coalesce(j.meta, '{}') @> (spec.s -> 'meta')
             AND (NOT (spec.s ->> 'meta_exact')::boolean OR coalesce(j.meta, '{}') <@ (spec.s -> 'meta'))))
  ORDER BY j.id
  LIMIT 1
  FOR UPDATE OF j
), replaced AS (
  UPDATE {prefix}.oban_jobs AS j SET
    args = CASE WHEN f.replace ? 'args' THEN c.args ELSE j.args END,
    max_attempts = CASE WHEN f.replace ? 'max_attempts' THEN c.max_attempts ELSE j.max_attempts END,
    meta = CASE WHEN f.replace ? 'meta' THEN c.meta ELSE j.meta END,
    priority = CASE WHEN f.replace ? 'priority' THEN coalesce(c.priority, j.priority) ELSE j.priority END,
    queue = CASE WHEN f.replace ? 'queue' THEN c.queue ELSE j.queue END,
    scheduled_at = CASE WHEN f.replace ? 'scheduled_at' THEN coalesce(c.scheduled_at, j.scheduled_at)
                        ELSE j.scheduled_at END,
    tags = CASE WHEN f.replace ? 'tags' THEN ARRAY(SELECT jsonb_array_elements_text(c.tags)) ELSE j.tags END,
    worker = CASE WHEN f.replace ? 'worker' THEN c.worker ELSE j.worker END
  FROM found AS f, candidate AS c
  WHERE j.id = f.id AND f.replace IS NOT NULL
  RETURNING j.id, j.queue, j.scheduled_at
), new_jobs AS (
  SELECT * FROM candidate WHERE NOT EXISTS (SELECT 1 FROM found)
), {insert_jobs}
SELECT id, queue, state, scheduled_at, false AS conflict, (SELECT count(*) FROM announced) AS announced
FROM inserted
UNION ALL
SELECT f.id, coalesce(r.queue, f.queue), f.state, coalesce(r.scheduled_at, f.scheduled_at), true, 0
FROM found AS f LEFT JOIN replaced AS r ON r.id = f.id
