-- Oban schema version 1: the job state enum, the oban_jobs table, its first indexes and the
-- notification trigger (the trigger is redefined by v08 and removed again by v12).
--
-- `{prefix}` stands for the quoted schema name. Every statement is idempotent so that a
-- half-known database can be brought forward safely. The enum is created with all eight labels
-- in their final order, as Oban 2.21+ does; v09 and v14 then find them already present.

DO $$
BEGIN
  IF to_regtype('{prefix}.oban_job_state') IS NULL THEN
    CREATE TYPE {prefix}.oban_job_state AS ENUM (
      'available',
      'suspended',
      'scheduled',
      'executing',
      'retryable',
      'completed',
      'discarded',
      'cancelled'
    );
  END IF;
END
$$;

CREATE TABLE IF NOT EXISTS {prefix}.oban_jobs (
  id bigserial,
  state {prefix}.oban_job_state NOT NULL DEFAULT 'available',
  queue text NOT NULL DEFAULT 'default',
  worker text NOT NULL,
  args jsonb NOT NULL,
  errors jsonb[] NOT NULL DEFAULT ARRAY[]::jsonb[],
  attempt integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL DEFAULT 20,
  inserted_at timestamp NOT NULL DEFAULT timezone('UTC', now()),
  scheduled_at timestamp NOT NULL DEFAULT timezone('UTC', now()),
  attempted_at timestamp,
  completed_at timestamp,
  PRIMARY KEY (id)
);

CREATE INDEX IF NOT EXISTS oban_jobs_queue_index ON {prefix}.oban_jobs (queue);
CREATE INDEX IF NOT EXISTS oban_jobs_state_index ON {prefix}.oban_jobs (state);
CREATE INDEX IF NOT EXISTS oban_jobs_scheduled_at_index ON {prefix}.oban_jobs (scheduled_at);

-- Version 1 announced inserts of due jobs and every state change. The channel is
-- "<schema>.oban_insert" / "<schema>.oban_update", built from the trigger's own schema.
CREATE OR REPLACE FUNCTION {prefix}.oban_jobs_notify() RETURNS trigger AS $$
DECLARE
  channel text;
  notice json;
BEGIN
  IF TG_OP = 'INSERT' THEN
    -- A job scheduled for later is announced by staging, not here.
    IF NEW.scheduled_at IS NOT NULL AND NEW.scheduled_at > timezone('UTC', now()) THEN
      RETURN NULL;
    END IF;
    channel := TG_TABLE_SCHEMA || '.oban_insert';
    notice := json_build_object('queue', NEW.queue, 'state', NEW.state);
  ELSE
    channel := TG_TABLE_SCHEMA || '.oban_update';
    notice := json_build_object('queue', NEW.queue, 'new_state', NEW.state, 'old_state', OLD.state);
  END IF;

  PERFORM pg_notify(channel, notice::text);
  RETURN NULL;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS oban_notify ON {prefix}.oban_jobs;
CREATE TRIGGER oban_notify
  AFTER INSERT OR UPDATE OF state ON {prefix}.oban_jobs
  FOR EACH ROW EXECUTE PROCEDURE {prefix}.oban_jobs_notify();
