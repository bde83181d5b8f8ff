-- Rescues orphans in the given queues ($1): jobs `executing` since before now - $2 seconds
-- whose producer is not one of this node's ($3), as oban-py's Lifeline does. They become
-- available again (counted in meta.rescued) or, with no attempts left, discarded. Available
-- jobs that can never be claimed (attempt >= max_attempts) are discarded too.
UPDATE {prefix}.oban_jobs SET
  state = (CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'available' END)::{prefix}.oban_job_state,
  discarded_at = CASE WHEN attempt >= max_attempts THEN timezone('UTC', now()) ELSE discarded_at END,
  meta = CASE WHEN state = 'executing'
              THEN coalesce(meta, '{}') || jsonb_build_object('rescued', coalesce((meta ->> 'rescued')::int, 0) + 1)
              ELSE meta END
WHERE queue = ANY($1)
  AND ((state = 'executing'
        AND attempted_at < timezone('UTC', now()) - make_interval(secs => $2)
        AND NOT coalesce(attempted_by[2] = ANY($3), false))
       OR (state = 'available' AND attempt >= max_attempts))
RETURNING id, state::text
