-- The latest badges: completed jobs of worker $1 (GenerateBadge), newest first. A backwards
-- walk of the primary key that stops after six rows, so it stays cheap however many finished
-- jobs the table holds.
SELECT id, args, completed_at FROM {prefix}.oban_jobs
WHERE state = 'completed' AND worker = $1
ORDER BY id DESC
LIMIT 6
