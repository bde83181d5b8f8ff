-- The database clock: every timestamp a node writes or compares comes from it, never from the
-- host's clock (cron aligns its ticks to it).
SELECT now()
