-- Views for users' SQL and for qpo status / qpo results: the paper's numbers, progress and
-- cost. Over the scheduler's tables and the reward workers' (0020).

-- Test accuracy as the paper reports it: per experiment, task, setting, target, loop and
-- source ('qpo', or 'baseline:NAME' at loop 0), the mean and population standard deviation
-- over seeds of each run's mean accuracy on its test sample. items_min/items_max: how many
-- test items each run has scored so far (equal to the sample size once the loop is done).
CREATE VIEW qpo.results AS
WITH per_run AS (
    SELECT r.experiment_id, r.task, r.setting, r.target, r.seed, s.loop, s.source,
           avg(s.acc) AS acc, count(*) AS items
    FROM qpo.eval_scores s
    JOIN qpo.runs r ON r.id = s.run_id
    GROUP BY r.experiment_id, r.task, r.setting, r.target, r.seed, s.loop, s.source
)
SELECT experiment_id, task, setting, target, loop, source,
       count(*) AS seeds,
       avg(acc) AS mean_acc,
       coalesce(stddev_pop(acc), 0) AS std_acc,
       min(items) AS items_min,
       max(items) AS items_max,
       array_agg(seed ORDER BY seed) AS seed_list,
       array_agg(acc ORDER BY seed) AS seed_acc
FROM per_run
GROUP BY experiment_id, task, setting, target, loop, source;

-- Jobs per run, stage and loop (loop 0: D_0 and baseline scoring).
CREATE VIEW qpo.run_progress AS
SELECT r.experiment_id, r.id AS run_id, r.task, r.setting, r.target, r.seed,
       r.state AS run_state, j.kind,
       coalesce((j.payload ->> 'loop')::integer, 0) AS loop,
       count(*) AS total,
       count(*) FILTER (WHERE j.state = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE j.state = 'running') AS running,
       count(*) FILTER (WHERE j.state IN ('queued', 'blocked')) AS waiting,
       count(*) FILTER (WHERE j.state = 'failed') AS retrying,
       count(*) FILTER (WHERE j.state = 'dead') AS dead,
       count(*) FILTER (WHERE j.state = 'cancelled') AS cancelled,
       min(j.started_at) AS first_started_at,
       max(j.finished_at) FILTER (WHERE j.state = 'succeeded') AS last_finished_at
FROM qpo.runs r
JOIN qpo.jobs j ON j.run_id = r.id
GROUP BY r.experiment_id, r.id, r.task, r.setting, r.target, r.seed, r.state, j.kind,
         coalesce((j.payload ->> 'loop')::integer, 0);

-- Target-LLM use per run and loop: HTTP calls made (cache hits are not calls), cache hits,
-- tokens, and calls that ended in an error.
CREATE VIEW qpo.run_cost AS
SELECT r.experiment_id, r.id AS run_id, r.task, r.setting, r.target, r.seed,
       coalesce((j.payload ->> 'loop')::integer, 0) AS loop,
       count(*) FILTER (WHERE NOT c.cache_hit) AS calls,
       count(*) FILTER (WHERE c.cache_hit) AS cache_hits,
       coalesce(sum(c.prompt_tokens) FILTER (WHERE NOT c.cache_hit), 0) AS prompt_tokens,
       coalesce(sum(c.completion_tokens) FILTER (WHERE NOT c.cache_hit), 0) AS completion_tokens,
       count(*) FILTER (WHERE c.status <> 'ok') AS errors,
       coalesce(sum(c.latency_ms) FILTER (WHERE NOT c.cache_hit), 0) AS latency_ms
FROM qpo.llm_calls c
JOIN qpo.jobs j ON j.id = c.job_id
JOIN qpo.runs r ON r.id = j.run_id
GROUP BY r.experiment_id, r.id, r.task, r.setting, r.target, r.seed,
         coalesce((j.payload ->> 'loop')::integer, 0);
