-- Exact job counts per state × queue for the states in $1 (labels), of any runtime's jobs, for
-- oban_met's full_count and Client::count_jobs. Only groups with jobs come back, as in
-- oban_met's count query.
SELECT state::text, queue, count(*)
FROM {prefix}.oban_jobs
WHERE state = ANY($1::text[]::{prefix}.oban_job_state[])
GROUP BY state, queue
