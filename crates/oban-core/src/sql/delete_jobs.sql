-- Deletes the filtered jobs (job_filter.sql, $1..$8) that are not executing, as
-- Oban.delete_all_jobs does (a running job keeps its row until it finishes; cancel it first).
-- Returns the deleted ids.
DELETE FROM {prefix}.oban_jobs AS j
WHERE {job_filter}
  AND j.state <> 'executing'
RETURNING j.id
