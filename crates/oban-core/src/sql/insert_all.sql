-- One statement for any number of jobs: the batch travels as parallel arrays, so it never meets
-- PostgreSQL's 65,535-parameter limit and needs no chunking. See insert_jobs.sql.
WITH new_jobs AS (
  SELECT *
  FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::int[], $5::int[], $6::timestamp[], $7::jsonb[], $8::jsonb[])
    AS n(worker, queue, args, max_attempts, priority, scheduled_at, tags, meta)
), {insert_jobs}
SELECT id, queue, state, scheduled_at, false AS conflict, (SELECT count(*) FROM announced) AS announced
FROM inserted
