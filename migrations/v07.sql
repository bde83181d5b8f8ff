-- Oban schema version 7: an index for finding finished jobs by attempt time (dropped in v10).

CREATE INDEX IF NOT EXISTS oban_jobs_attempted_at_id_index
  ON {prefix}.oban_jobs (attempted_at DESC, id)
  WHERE state IN ('completed', 'discarded');
