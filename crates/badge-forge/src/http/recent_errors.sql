-- The latest failures of any node: the eight most recently attempted retryable and discarded
-- jobs, each with its last error entry's time and message. `to_jsonb` reads both Elixir's
-- `jsonb[]` and oban-py's `jsonb` errors column; each state is limited on its own first so
-- the state index bounds the work.
SELECT id, worker, queue, state::text, attempt::int, max_attempts::int,
       (to_jsonb(errors) -> -1) ->> 'at', (to_jsonb(errors) -> -1) ->> 'error'
FROM ((SELECT * FROM {prefix}.oban_jobs WHERE state = 'retryable'
       ORDER BY attempted_at DESC NULLS LAST LIMIT 8)
      UNION ALL
      (SELECT * FROM {prefix}.oban_jobs WHERE state = 'discarded'
       ORDER BY attempted_at DESC NULLS LAST LIMIT 8)) AS failed
ORDER BY attempted_at DESC NULLS LAST
LIMIT 8
