-- Exact job counts per state × queue for the states in $1 (labels), for oban_met's full_count.
-- Only groups with jobs come back, as in oban_met's count query.
SELECT state::text, queue, count(*)
FROM {prefix}.oban_jobs
WHERE state = ANY($1::text[]::{prefix}.oban_job_state[])
GROUP BY state, queue
