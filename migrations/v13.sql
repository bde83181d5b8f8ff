-- Oban schema version 13: indexes for pruning cancelled and discarded jobs.

CREATE INDEX IF NOT EXISTS oban_jobs_state_cancelled_at_index
  ON {prefix}.oban_jobs (state, cancelled_at);
CREATE INDEX IF NOT EXISTS oban_jobs_state_discarded_at_index
  ON {prefix}.oban_jobs (state, discarded_at);
