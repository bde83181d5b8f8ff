-- oban-py's producers (its oban_producers table) and whether each is alive: its node touched
-- the row within the last $1 seconds (oban-py touches them every 15 s, and its own leader
-- deletes rows older than 60 s as dead).
SELECT uuid::text, updated_at > timezone('UTC', now()) - make_interval(secs => $1)
FROM {prefix}.oban_producers
