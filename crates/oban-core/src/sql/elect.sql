-- Takes or renews this runtime's leadership row in oban_peers, as Oban.Peers.Database does,
-- under a name of its own ($1), so Elixir's row for "Oban" is never touched and Elixir never
-- touches ours. Run after delete_expired_leader.sql in the same transaction. The upsert renews
-- only a row this node ($2) holds; returns a row exactly when this node leads.
INSERT INTO {prefix}.oban_peers AS peers (name, node, started_at, expires_at)
VALUES ($1, $2, timezone('UTC', now()), timezone('UTC', now()) + make_interval(secs => $3))
ON CONFLICT (name) DO UPDATE SET expires_at = EXCLUDED.expires_at
WHERE peers.node = EXCLUDED.node
RETURNING peers.node
