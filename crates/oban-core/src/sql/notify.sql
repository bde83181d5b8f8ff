-- Publishes each already-encoded payload of $2 on channel $1, one notification each, in one
-- round trip (as Elixir and oban-py publish). Inside a transaction delivery waits for the commit.
SELECT count(pg_notify($1, payload)) FROM unnest($2::text[]) AS payload
