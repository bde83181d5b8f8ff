-- Gives up leadership at shutdown: deletes this runtime's row ($1) in oban_leaders only if this
-- node ($2) holds it.
DELETE FROM {prefix}.oban_leaders WHERE name = $1 AND node = $2
