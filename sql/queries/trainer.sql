-- Named statements of the trainer workers (workers/trainer): train, generate,
-- evaluate-generate and merge jobs.

-- name: trainer_run_info
-- $1 run id: the run, its sampling shape and its experiment's resolved config.
SELECT r.task, r.setting, r.target, r.seed, r.loops, r.collect_batches, r.collect_batch_size,
       r.test_size, e.resolved_config::text
FROM qpo.runs r JOIN qpo.experiments e ON e.id = r.experiment_id
WHERE r.id = $1;

-- name: trainer_d0_range
-- $1 task, $2 setting, $3 target: D_0's raw reward range (r_norm) and size.
SELECT min(raw_reward), max(raw_reward), count(*) FROM qpo.d0_records
WHERE task = $1 AND setting = $2 AND target = $3;

-- name: trainer_d0_records
-- $1 task, $2 setting, $3 target: D_0 in a fixed order (the trainer's seeded shuffle starts
-- from it, so the order is part of what makes training reproducible).
SELECT query, prompt, raw_reward FROM qpo.d0_records
WHERE task = $1 AND setting = $2 AND target = $3
ORDER BY id;

-- name: trainer_run_records_before
-- $1 run, $2 loop t: the records merged by loops before t, in a fixed order.
SELECT query, prompt, raw_reward FROM qpo.run_records
WHERE run_id = $1 AND loop < $2
ORDER BY loop, item_id, query, prompt;

-- name: trainer_checkpoint_get
-- $1 run, $2 loop: the loop's final checkpoint (artifact_epoch: the epoch in qpo.artifacts
-- when the weights are kept in PostgreSQL, NULL when path is a file).
SELECT path, sha256, bytes, epochs, config::text, artifact_epoch FROM qpo.checkpoints
WHERE run_id = $1 AND loop = $2;

-- name: trainer_collect_items
-- $1 run, $2 loop, $3 batch: the batch's items (the scheduler's selection) and their queries.
SELECT b.pos, b.item_id, i.query
FROM qpo.runs r
JOIN LATERAL qpo.collect_batch(r.id, $2::integer, $3::integer) b ON true
JOIN qpo.task_items i ON i.task = r.task AND i.item_id = b.item_id
WHERE r.id = $1
ORDER BY b.pos;

-- name: trainer_test_items
-- $1 run, $2 n: the run's test sample of n items (the scheduler's selection) and queries.
SELECT s.ord, s.item_id, i.query
FROM qpo.runs r
JOIN LATERAL qpo.test_sample(r.task, r.seed, $2::integer) s ON true
JOIN qpo.task_items i ON i.task = r.task AND i.item_id = s.item_id
WHERE r.id = $1
ORDER BY s.ord;

-- name: trainer_merge_stats
-- $1 run, $2 loop: what merge(t) sees: the loop's rewards, how many beat D_0's minimum raw
-- reward, and that minimum (NULL when D_0 is empty).
SELECT count(*), count(*) FILTER (WHERE w.raw_reward > d.min_raw), min(d.min_raw), min(d.n)
FROM qpo.runs r
CROSS JOIN LATERAL (SELECT min(raw_reward) AS min_raw, count(*) AS n FROM qpo.d0_records d0
                    WHERE d0.task = r.task AND d0.setting = r.setting
                      AND d0.target = r.target) d
LEFT JOIN qpo.rewards w ON w.run_id = r.id AND w.loop = $2
WHERE r.id = $1;

-- name: trainer_merge_insert
-- $1 run, $2 loop: D_t's additions. Rewards above D_0's minimum raw reward, one per (query,
-- prompt): the lowest item id wins inside the loop; a pair already in D (an earlier loop's
-- record, or a D_0 record, whose prompts end in the literal <|endoftext|>) is dropped.
INSERT INTO qpo.run_records (run_id, loop, item_id, query, prompt, raw_reward)
SELECT DISTINCT ON (w.query, w.prompt) w.run_id, w.loop, w.item_id, w.query, w.prompt,
       w.raw_reward
FROM qpo.runs r
JOIN qpo.rewards w ON w.run_id = r.id AND w.loop = $2
WHERE r.id = $1
  AND w.raw_reward > (SELECT min(d.raw_reward) FROM qpo.d0_records d
                      WHERE d.task = r.task AND d.setting = r.setting AND d.target = r.target)
  AND NOT EXISTS (SELECT 1 FROM qpo.run_records o
                  WHERE o.run_id = r.id AND o.query = w.query AND o.prompt = w.prompt)
  AND NOT EXISTS (SELECT 1 FROM qpo.d0_records d
                  WHERE d.task = r.task AND d.setting = r.setting AND d.target = r.target
                    AND d.query = w.query
                    AND d.prompt IN (w.prompt, w.prompt || '<|endoftext|>'))
ORDER BY w.query, w.prompt, w.item_id;

-- name: trainer_metrics_truncate
-- $1 run, $2 loop, $3 the step this attempt starts after: an attempt owns the loop's curve
-- from its starting step on (a start-over must not leave an older trajectory's steps).
DELETE FROM qpo.train_metrics WHERE run_id = $1 AND loop = $2 AND step > $3;

-- name: trainer_metrics_insert
-- $1 run, $2 loop, $3..$12 parallel arrays (step, epoch, loss, ce, mse, lambda, lr,
-- grad_norm, batch_size, tokens_per_s), $13 job, $14 attempt: a batch of logged steps.
-- A step already logged keeps its first row (a replayed step has the same values).
INSERT INTO qpo.train_metrics (run_id, loop, step, epoch, loss, ce, mse, lambda, lr, grad_norm,
                               batch_size, tokens_per_s, job_id, attempt)
SELECT $1, $2, m.step, m.epoch, m.loss, m.ce, m.mse, m.lambda, m.lr, m.grad_norm, m.batch_size,
       m.tokens_per_s, $13, $14
FROM unnest($3::bigint[], $4::integer[], $5::float8[], $6::float8[], $7::float8[],
            $8::float8[], $9::float8[], $10::float8[], $11::integer[], $12::float8[])
     AS m (step, epoch, loss, ce, mse, lambda, lr, grad_norm, batch_size, tokens_per_s)
ON CONFLICT (run_id, loop, step) DO NOTHING;
