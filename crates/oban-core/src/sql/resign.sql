-- Gives up leadership at shutdown: deletes the row only if this node ($2) holds it.
DELETE FROM {prefix}.oban_peers WHERE name = $1 AND node = $2
