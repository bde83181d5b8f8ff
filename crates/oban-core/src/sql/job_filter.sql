-- The condition of a JobFilter (jobs.rs) on `j`, spliced into the job API's statements as
-- `{job_filter}`: each of $1 ids, $2 queues, $3 states, $4 workers, $7 priorities (any of the
-- listed), $5 tags (all of them), $6 args and $8 meta (jsonb containment, as `args @>`)
-- restricts the jobs when it is not NULL; with all NULL every job matches, as Oban's
-- `*_all_jobs(Oban.Job)` do.
($1::bigint[] IS NULL OR j.id = ANY($1::bigint[]))
AND ($2::text[] IS NULL OR j.queue = ANY($2::text[]))
AND ($3::text[] IS NULL OR j.state::text = ANY($3::text[]))
AND ($4::text[] IS NULL OR j.worker = ANY($4::text[]))
AND ($5::text[] IS NULL OR coalesce(j.tags, '{}')::text[] @> $5::text[])
AND ($6::jsonb IS NULL OR j.args @> $6::jsonb)
AND ($7::int[] IS NULL OR j.priority = ANY($7::int[]))
AND ($8::jsonb IS NULL OR j.meta @> $8::jsonb)
