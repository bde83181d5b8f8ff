-- The args of the latest GenerateBadge job ($1) of the badge whose id is $2 (a JSON string) or
-- $3 (the same id as a JSON number, or NULL), read as badge_args reads them: "id", else
-- "badge_id". The containment tests let Elixir's GIN index on args find the rows without a
-- scan; the coalesce keeps a job whose "id" differs but whose "badge_id" matches out.
SELECT args FROM {prefix}.oban_jobs
WHERE worker = $1
  AND (args @> jsonb_build_object('id', $2::jsonb)
       OR args @> jsonb_build_object('badge_id', $2::jsonb)
       OR args @> jsonb_build_object('id', $3::jsonb)
       OR args @> jsonb_build_object('badge_id', $3::jsonb))
  AND coalesce(args -> 'id', args -> 'badge_id') IN ($2::jsonb, $3::jsonb)
ORDER BY id DESC
LIMIT 1
