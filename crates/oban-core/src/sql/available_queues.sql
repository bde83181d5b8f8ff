-- Which of the queues $1 have at least one available job: one index probe per queue.
SELECT queue
FROM unnest($1::text[]) AS queue
WHERE EXISTS (SELECT 1 FROM {prefix}.oban_jobs AS j WHERE j.state = 'available' AND j.queue = queue)
