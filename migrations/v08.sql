-- Oban schema version 8: discarded_at, priority and tags; the claim index now leads with
-- state and includes priority; the trigger only announces available inserts.

-- Like Oban, the columns are added first and get their defaults afterwards, so rows that
-- already exist keep NULL in them.
ALTER TABLE {prefix}.oban_jobs
  ADD COLUMN IF NOT EXISTS discarded_at timestamp,
  ADD COLUMN IF NOT EXISTS priority integer,
  ADD COLUMN IF NOT EXISTS tags text[];

ALTER TABLE {prefix}.oban_jobs
  ALTER COLUMN priority SET DEFAULT 0,
  ALTER COLUMN tags SET DEFAULT ARRAY[]::text[];

DROP INDEX IF EXISTS {prefix}.oban_jobs_queue_state_scheduled_at_id_index;
CREATE INDEX IF NOT EXISTS oban_jobs_state_queue_priority_scheduled_at_id_index
  ON {prefix}.oban_jobs (state, queue, priority, scheduled_at, id);

CREATE OR REPLACE FUNCTION {prefix}.oban_jobs_notify() RETURNS trigger AS $$
BEGIN
  IF NEW.state = 'available' THEN
    PERFORM pg_notify(TG_TABLE_SCHEMA || '.oban_insert',
                      json_build_object('queue', NEW.queue)::text);
  END IF;
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS oban_notify ON {prefix}.oban_jobs;
CREATE TRIGGER oban_notify
  AFTER INSERT ON {prefix}.oban_jobs
  FOR EACH ROW EXECUTE PROCEDURE {prefix}.oban_jobs_notify();
