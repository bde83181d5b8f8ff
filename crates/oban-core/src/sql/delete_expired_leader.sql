-- Frees this runtime's leadership row ($1) once its holder stopped renewing it.
DELETE FROM {prefix}.oban_peers WHERE name = $1 AND expires_at < timezone('UTC', now())
