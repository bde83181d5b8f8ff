-- Oban schema version 14: the `suspended` state, placed before `scheduled` in enum order.
-- (Like every label added by ALTER TYPE, it is usable only after the migration commits.)

ALTER TYPE {prefix}.oban_job_state ADD VALUE IF NOT EXISTS 'suspended' BEFORE 'scheduled';
