-- Serialises unique inserts of this runtime per unique key until the transaction ends: $1 are
-- the jobs' key texts (unique.rs, Unique::lock_text), $2 the prefix. The keys are locked in
-- the order of their hashes, so two inserters of overlapping batches cannot deadlock. The
-- caller looks for an existing job only in a later statement, whose snapshot then includes
-- whatever the previous holder of a lock committed. Elixir's unique inserts take a lock on a
-- key Rust cannot compute (Erlang's phash2), so they are not serialised against these.
SELECT pg_advisory_xact_lock(key)
FROM (
  SELECT DISTINCT hashtextextended($2 || '.oban_jobs unique ' || text, 0) AS key
  FROM unnest($1::text[]) AS text
  ORDER BY key
) AS keys
