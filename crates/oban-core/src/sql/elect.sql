-- Takes or renews this runtime's leadership row in oban_peers, as Oban.Peers.Database does,
-- under a name of its own ($1), so Elixir's row for "Oban" is never touched and Elixir never
-- touches ours. The row lives $3 seconds. Run after delete_expired_leader.sql in the same
-- transaction. The upsert renews only a row this node ($2) holds. Returns whether this node
-- leads now and, for a follower, in how many seconds the holder's row expires (when to try
-- again; as the statement began, so possibly early, never late, unless NULL: no row then).
WITH elected AS (
  INSERT INTO {prefix}.oban_peers AS peers (name, node, started_at, expires_at)
  VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()) + make_interval(secs => $3))
  ON CONFLICT (name) DO UPDATE SET expires_at = EXCLUDED.expires_at
  WHERE peers.node = EXCLUDED.node
  RETURNING peers.node
)
SELECT EXISTS (SELECT FROM elected),
       (SELECT extract(epoch FROM expires_at - timezone('UTC', now()))::float8
        FROM {prefix}.oban_peers WHERE name = $1)
