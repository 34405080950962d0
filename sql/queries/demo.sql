-- Named statements of `qpo demo`: how far its experiment is and what failed.

-- name: demo_experiment_state
SELECT state, coalesce(error, '') FROM qpo.experiments WHERE id = $1::bigint;

-- name: demo_job_counts
SELECT count(*) FILTER (WHERE j.state = 'succeeded'),
       count(*) FILTER (WHERE j.state = 'running'),
       count(*)
FROM qpo.jobs j JOIN qpo.runs r ON r.id = j.run_id
WHERE r.experiment_id = $1::bigint;

-- name: demo_failed_jobs
SELECT j.id, j.kind, j.state, j.attempt, coalesce(j.last_error, '(no error recorded)')
FROM qpo.jobs j JOIN qpo.runs r ON r.id = j.run_id
WHERE r.experiment_id = $1::bigint AND j.state IN ('failed', 'dead')
ORDER BY j.id
LIMIT 5;

-- name: demo_task_items
SELECT count(*) FROM qpo.task_items WHERE task = $1;

-- name: demo_d0_records
SELECT count(*) FROM qpo.d0_records WHERE task = $1 AND setting = $2 AND target = $3;

-- name: demo_llm_calls
SELECT count(*), count(*) FILTER (WHERE cache_hit) FROM qpo.llm_calls;
