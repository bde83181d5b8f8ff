-- The planner's estimate of the jobs in state $1 and queue $2, for states too large to count
-- every second (what oban_met's oban_count_estimate returns, without creating that function):
-- read it from the plan's "Plan Rows".
EXPLAIN (FORMAT JSON) SELECT id FROM {prefix}.oban_jobs WHERE state = $1::text::{prefix}.oban_job_state AND queue = $2
