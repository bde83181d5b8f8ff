-- Takes or renews this runtime's leadership row in oban-py's oban_leaders, on a schema that
-- oban-py installed (it has no oban_peers), the way oban-py's own election does, but under a
-- name of its own ($1): oban-py's row for its instance name is never touched, and oban-py
-- deletes only rows that have expired. The row lives $3 seconds. Run after
-- delete_expired_oban_leaders.sql in the same transaction. The upsert renews only a row this
-- node ($2) holds. Returns whether this node leads now and, for a follower, in how many
-- seconds the holder's row expires (as in elect.sql).
WITH elected AS (
  INSERT INTO {prefix}.oban_leaders AS leaders (name, node, elected_at, expires_at)
  VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()) + make_interval(secs => $3))
  ON CONFLICT (name) DO UPDATE SET expires_at = EXCLUDED.expires_at
  WHERE leaders.node = EXCLUDED.node
  RETURNING leaders.node
)
SELECT EXISTS (SELECT FROM elected),
       (SELECT extract(epoch FROM expires_at - timezone('UTC', now()))::float8
        FROM {prefix}.oban_leaders WHERE name = $1)
