-- The instant $1 seconds before the database's clock, as completed_at stores instants
-- (timestamp without time zone, in UTC): a print run's relative --since is measured by the
-- clock that wrote the completions, read once so every page of the run shares it.
SELECT timezone('UTC', now()) - make_interval(secs => $1::float8)
