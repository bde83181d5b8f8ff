-- Rescues orphans in the given queues ($1): `executing` jobs whose producer
-- (attempted_by[2]) is not alive ($3: this node's producers and those heard lately), and
-- either fell silent ($4: producers heard before, then not for the silence window) or, for a
-- producer this node cannot see, has been executing since before now - $2 seconds, as
-- oban-py's Lifeline does. A job of a live producer is never rescued, whatever its age. They
-- become available again (counted in meta.rescued) or, with no attempts left, discarded.
-- Available jobs that can never be claimed (attempt >= max_attempts) are discarded too.
UPDATE {prefix}.oban_jobs SET
  state = (CASE WHEN attempt >= max_attempts THEN 'discarded' ELSE 'available' END)::{prefix}.oban_job_state,
  discarded_at = CASE WHEN attempt >= max_attempts THEN timezone('UTC', now()) ELSE discarded_at END,
  meta = CASE WHEN state = 'executing'
              THEN coalesce(meta, '{}') || jsonb_build_object('rescued', coalesce((meta ->> 'rescued')::int, 0) + 1)
              ELSE meta END
WHERE queue = ANY($1)
  AND ((state = 'executing'
        AND NOT coalesce(attempted_by[2] = ANY($3), false)
        AND (coalesce(attempted_by[2] = ANY($4), false)
             OR attempted_at < timezone('UTC', now()) - make_interval(secs => $2)))
       OR (state = 'available' AND attempt >= max_attempts))
RETURNING id, state::text
