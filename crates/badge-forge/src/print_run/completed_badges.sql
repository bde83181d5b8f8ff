-- One page of a print run's badges: the completed jobs of worker $1 in queue $2 that carry
-- every tag of $3 (none when empty) and completed at or after $4 (any time when NULL), with
-- ids above $5, in id order, at most $6 of them. Each page starts where the last ended, a
-- walk of the primary key, so a run of any size is read in bounded pages and a job that
-- completes meanwhile is read once or not at all, never twice.
SELECT id, args FROM {prefix}.oban_jobs
WHERE state = 'completed'
  AND worker = $1
  AND queue = $2
  AND coalesce(tags, '{}') @> $3::text[]
  AND ($4::timestamp IS NULL OR completed_at >= $4::timestamp)
  AND id > $5
ORDER BY id
LIMIT $6
