-- Frees this runtime's leadership row ($1) in oban_leaders once its holder stopped renewing
-- it; oban-py's rows are left to oban-py.
DELETE FROM {prefix}.oban_leaders WHERE name = $1 AND expires_at < timezone('UTC', now())
