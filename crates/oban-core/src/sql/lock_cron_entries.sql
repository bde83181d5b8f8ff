-- Serialises cron inserts per entry name (the names $1, sorted by the caller so that two
-- inserters take the locks in the same order and cannot deadlock) and prefix ($2) until the
-- transaction ends, across every node of this runtime. Elixir's Cron plugin takes no such lock.
SELECT pg_advisory_xact_lock(hashtextextended($2 || '.oban_jobs cron ' || name, 0))
FROM unnest($1::text[]) AS name
