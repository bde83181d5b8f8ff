-- Which of the queues $1 have at least one available job: one index probe per queue. The
-- queue name is qualified (q.name): a bare `queue` inside the EXISTS would resolve to j.queue
-- and announce every queue whenever any queue has an available job.
SELECT q.name
FROM unnest($1::text[]) AS q(name)
WHERE EXISTS (SELECT 1 FROM {prefix}.oban_jobs AS j WHERE j.state = 'available' AND j.queue = q.name)
