-- Named statements of the scheduler: experiments, planning, data import, status, results.

-- name: import_stage_create
CREATE TEMP TABLE import_stage (LIKE qpo.task_items) ON COMMIT DROP;

-- name: import_stage_rows
INSERT INTO import_stage SELECT * FROM jsonb_populate_recordset(NULL::qpo.task_items, $1::jsonb);

-- name: import_changed_rows
SELECT count(*), min(s.upstream_split), min(s.upstream_index)
FROM import_stage s
JOIN qpo.task_items t USING (task, upstream_split, upstream_index)
WHERE (t.item_id, t.split, t.query, t.fields, t.label, t.answer)
      IS DISTINCT FROM (s.item_id, s.split, s.query, s.fields, s.label, s.answer);

-- name: import_insert_items
INSERT INTO qpo.task_items SELECT * FROM import_stage ON CONFLICT DO NOTHING;

-- name: import_split_counts
SELECT split, count(*) FROM qpo.task_items WHERE task = $1 GROUP BY split ORDER BY split;

-- name: d0_stage_create
CREATE TEMP TABLE d0_stage ON COMMIT DROP AS
SELECT task, setting, target, source, prompt_method, query, label, answer, prompt, acc, avg_acc,
       raw_reward, extra, avg_acc_weight
FROM qpo.d0_records WITH NO DATA;

-- name: d0_stage_rows
INSERT INTO d0_stage
SELECT task, setting, target, source, coalesce(prompt_method, ''), query, label, answer, prompt,
       acc, avg_acc, raw_reward, coalesce(extra, '{}'), coalesce(avg_acc_weight, 10)
FROM jsonb_populate_recordset(NULL::qpo.d0_records, $1::jsonb);

-- name: d0_insert
INSERT INTO qpo.d0_records (task, setting, target, source, prompt_method, query, label, answer,
                            prompt, acc, avg_acc, raw_reward, extra, avg_acc_weight)
SELECT task, setting, target, source, prompt_method, query, label, answer, prompt, acc, avg_acc,
       raw_reward, extra, avg_acc_weight
FROM d0_stage
ON CONFLICT (task, setting, target, query, prompt) DO NOTHING;

-- name: exp_insert
INSERT INTO qpo.experiments (name, config) VALUES ($1, $2::jsonb) RETURNING id;

-- name: exp_claim_submitted
-- SKIP LOCKED: two schedulers plan different experiments instead of queueing on one.
SELECT id, name, config::text FROM qpo.experiments
WHERE state = 'submitted' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED;

-- name: exp_mark_invalid
-- Only while still submitted: a cancel that came in between wins.
UPDATE qpo.experiments SET state = 'invalid', error = $2, updated_at = now()
WHERE id = $1 AND state = 'submitted';

-- name: exp_mark_planned
UPDATE qpo.experiments SET state = 'planned', resolved_config = $2::jsonb, updated_at = now()
WHERE id = $1;

-- name: target_get
SELECT base_url, model FROM qpo.targets WHERE name = $1 FOR UPDATE;

-- name: target_upsert
INSERT INTO qpo.targets (name, base_url, model, config) VALUES ($1, $2, $3, $4::jsonb)
ON CONFLICT (name) DO UPDATE SET config = EXCLUDED.config, updated_at = now()
WHERE qpo.targets.config IS DISTINCT FROM EXCLUDED.config;

-- name: run_insert
INSERT INTO qpo.runs (experiment_id, task, setting, target, seed, loops, collect_batches,
                      collect_batch_size, test_size, test_shards, collect_draw, avg_acc_weight)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (experiment_id, task, setting, target, seed) DO NOTHING;

-- name: runs_of_experiment
SELECT id, task, setting, target, seed FROM qpo.runs WHERE experiment_id = $1 ORDER BY id;

-- name: exp_active
SELECT id FROM qpo.experiments WHERE state IN ('planned', 'running', 'failed') ORDER BY id;

-- name: exp_refresh
SELECT qpo.refresh_experiment_state($1);

-- name: exp_lock
SELECT state FROM qpo.experiments WHERE id = $1 FOR UPDATE;

-- name: exp_next_unfinished_job
-- One at a time: cancelling a job cancels its descendants, so the next pick sees that.
SELECT j.id FROM qpo.jobs j JOIN qpo.runs r ON r.id = j.run_id
WHERE r.experiment_id = $1 AND j.state IN ('blocked', 'queued', 'running', 'failed')
ORDER BY j.id LIMIT 1;

-- name: exp_next_retryable_job
-- dead and failed jobs; cancelled ones too when the whole experiment was cancelled ($2).
-- Retrying a job revives its cancelled descendants, so the next pick sees that.
SELECT j.id FROM qpo.jobs j JOIN qpo.runs r ON r.id = j.run_id
WHERE r.experiment_id = $1
  AND (j.state IN ('dead', 'failed') OR ($2::boolean AND j.state = 'cancelled'))
ORDER BY j.id LIMIT 1;

-- name: exp_cancel_rows
WITH runs AS (
    UPDATE qpo.runs SET state = 'cancelled', updated_at = now()
    WHERE experiment_id = $1 AND state <> 'done' RETURNING id)
UPDATE qpo.experiments SET state = 'cancelled', error = NULL, updated_at = now()
WHERE id = $1;

-- name: exp_uncancel_rows
-- Resume after cancel: runs and experiment go back to planned; refresh derives the rest.
WITH runs AS (
    UPDATE qpo.runs SET state = 'planned', error = NULL, updated_at = now()
    WHERE experiment_id = $1 AND state IN ('cancelled', 'failed') RETURNING id)
UPDATE qpo.experiments
SET state = CASE WHEN resolved_config IS NULL THEN 'submitted' ELSE 'planned' END,
    updated_at = now()
WHERE id = $1 AND state IN ('cancelled', 'failed');

-- name: exp_count_jobs
SELECT count(*) FROM qpo.jobs j JOIN qpo.runs r ON r.id = j.run_id WHERE r.experiment_id = $1;

-- name: status_experiments
SELECT id, name, state, coalesce(error, ''), to_char(created_at, 'YYYY-MM-DD HH24:MI:SS')
FROM qpo.experiments WHERE ($1::bigint IS NULL OR id = $1) ORDER BY id;

-- name: status_runs
SELECT id, task, setting, target, seed, state, coalesce(error, '')
FROM qpo.runs WHERE experiment_id = $1 ORDER BY id;

-- name: status_stages
-- Per run and stage over all loops; elapsed: seconds since the stage's first job started.
SELECT p.run_id, p.kind, sum(p.total), sum(p.succeeded), sum(p.running), sum(p.waiting),
       sum(p.retrying), sum(p.dead), sum(p.cancelled),
       coalesce(extract(epoch FROM now() - min(p.first_started_at)), 0)
FROM qpo.run_progress p
WHERE p.experiment_id = $1
GROUP BY p.run_id, p.kind
ORDER BY p.run_id, array_position(ARRAY['import-check', 'd0', 'train', 'generate',
         'evaluate-generate', 'reward', 'score', 'merge'], p.kind), p.kind;

-- name: status_devices
-- Where each run's stages computed: the trainer's job results carry the device ("cpu" or the
-- GPU's name), so a stage trained on two machines lists both.
SELECT j.run_id, j.kind,
       string_agg(DISTINCT j.result ->> 'device', ', ' ORDER BY j.result ->> 'device')
FROM qpo.jobs j
JOIN qpo.runs r ON r.id = j.run_id
WHERE r.experiment_id = $1 AND j.result ? 'device'
GROUP BY j.run_id, j.kind;

-- name: status_cost
SELECT run_id, sum(calls), sum(cache_hits), sum(prompt_tokens + completion_tokens)
FROM qpo.run_cost WHERE experiment_id = $1 GROUP BY run_id ORDER BY run_id;

-- name: status_training
-- $1 experiment: the newest logged step (qpo.train_metrics) of each running train job.
SELECT j.run_id, m.loop, m.epoch, m.step, m.loss, coalesce(m.tokens_per_s, 0)
FROM qpo.jobs j
JOIN qpo.runs r ON r.id = j.run_id
CROSS JOIN LATERAL (SELECT t.loop, t.epoch, t.step, t.loss, t.tokens_per_s
                    FROM qpo.train_metrics t
                    WHERE t.run_id = j.run_id AND t.loop = (j.payload->>'loop')::int
                    ORDER BY t.step DESC LIMIT 1) m
WHERE r.experiment_id = $1 AND j.kind = 'train' AND j.state = 'running'
ORDER BY j.run_id, m.loop;

-- name: results_of_experiment
-- Per loop: qpo first, then the baselines, the oracle last; loop-0 rows (fixed baselines,
-- best single, oracle) come before loop 1.
SELECT task, setting, target, source, loop, seeds, mean_acc, std_acc, items_min, items_max,
       distinct_prompts
FROM qpo.results WHERE experiment_id = $1
ORDER BY task, setting, target, loop, source <> 'qpo', source = 'oracle', source;

-- name: results_item_scores
-- $1 experiment: every per-item score, for the paired bootstrap (scheduler/results.c).
SELECT task, setting, target, seed, loop, source, item_id, acc
FROM qpo.item_scores WHERE experiment_id = $1
ORDER BY task, setting, target, seed, loop, source, item_id;

-- name: results_d0_provenance
-- $1 experiment: per (task, setting, target) of its runs, where D_0 came from: the sources
-- of its records other than a d0 job against this target (imported files).
SELECT DISTINCT r.task, r.setting, r.target, d.source
FROM qpo.runs r
JOIN qpo.d0_records d ON d.task = r.task AND d.setting = r.setting AND d.target = r.target
WHERE r.experiment_id = $1 AND d.source <> 'd0-job'
ORDER BY 1, 2, 3, 4;

-- name: results_reward_weights
-- $1 experiment: the avg_acc weights of its runs' raw rewards (one unless runs were planned
-- by different qpo versions).
SELECT DISTINCT avg_acc_weight FROM qpo.runs WHERE experiment_id = $1 ORDER BY 1;

-- name: run_data_problem
SELECT qpo.run_data_problem($1);

-- name: metrics_queue_depth
-- The unfinished jobs per state for `qpo scheduler --metrics-listen`, read at scrape time.
-- One count per state so that each reads its state's partial index (0001: blocked, claim,
-- lease), whatever the finished jobs number; finished states would need a scan of the table.
SELECT 'blocked' AS state, count(*) FROM qpo.jobs WHERE state = 'blocked'
UNION ALL SELECT 'queued', count(*) FROM qpo.jobs WHERE state = 'queued'
UNION ALL SELECT 'running', count(*) FROM qpo.jobs WHERE state = 'running'
UNION ALL SELECT 'failed', count(*) FROM qpo.jobs WHERE state = 'failed';

-- name: dryrun_task_sizes
-- $1 task: items per split and the mean query length in characters, for `qpo submit --dry-run`.
SELECT split, count(*), coalesce(avg(length(query)), 0)
FROM qpo.task_items
WHERE task = $1
GROUP BY split;

-- name: dryrun_d0_prompts
-- $1 task, $2 setting, $3 target: the distinct source prompts of an imported D_0.
SELECT count(DISTINCT prompt) FROM qpo.d0_records WHERE task = $1 AND setting = $2 AND target = $3;

-- name: import_task_runs
-- $1 task: the runs that read its items (any state: finished runs' results name the items).
-- SHARE on qpo.runs first, so no run is planned on the task until the import commits.
SELECT count(*), min(id), min(experiment_id) FROM qpo.runs WHERE task = $1;

-- name: import_lock_runs
LOCK TABLE qpo.runs IN SHARE MODE;

-- name: import_replace_items
-- --replace: the task's items of the upstream splits being imported go, the staged ones come.
DELETE FROM qpo.task_items t
WHERE t.task = $1 AND t.upstream_split IN (SELECT DISTINCT upstream_split FROM import_stage);

-- name: d0_weight_conflict
-- $1 task, $2 setting, $3 target, $4 avg_acc weight: a weight D_0 already holds other than $4
-- (no row: none). D_0's records of one (task, setting, target) share one reward.
SELECT avg_acc_weight FROM qpo.d0_records
WHERE task = $1 AND setting = $2 AND target = $3 AND avg_acc_weight <> $4::double precision
LIMIT 1;
