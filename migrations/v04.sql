-- Oban schema version 4: the oban_wrap_id helper from v02 is no longer used.

DROP FUNCTION IF EXISTS {prefix}.oban_wrap_id(bigint);
