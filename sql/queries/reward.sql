-- Named statements of the reward workers (workers/reward): reward, score and d0 jobs, the
-- llm_calls audit trail and its response cache.

-- name: reward_run_info
-- $1 run id: the run's task, setting, seed, test shape, reward weight and its target.
SELECT r.task, r.setting, r.seed, r.test_size, r.target, r.avg_acc_weight, t.base_url, t.model,
       t.config::text AS config
FROM qpo.runs r JOIN qpo.targets t ON t.name = r.target
WHERE r.id = $1;

-- name: reward_target_info
-- $1 target name.
SELECT t.name, t.base_url, t.model, t.config::text AS config FROM qpo.targets t WHERE t.name = $1;

-- name: reward_collect_pairs
-- $1 run, $2 loop, $3 batch: the batch's (item, generated prompt) pairs with the item's data.
-- Item readers (qpo_items_read) take columns by name.
SELECT g.item_id, i.query, g.prompt, i.fields::text AS fields, i.label, i.answer
FROM qpo.generations g
JOIN qpo.runs r ON r.id = g.run_id
JOIN qpo.task_items i ON i.task = r.task AND i.item_id = g.item_id
WHERE g.run_id = $1 AND g.loop = $2 AND g.purpose = 'collect' AND g.batch = $3
ORDER BY g.item_id;

-- name: reward_test_pairs
-- $1 run, $2 loop, $3 shard, $4 shards: the policy's test prompts of this shard (ord % shards).
SELECT g.item_id, i.query, g.prompt, i.fields::text AS fields, i.label, i.answer
FROM qpo.runs r
JOIN LATERAL qpo.test_sample(r.task, r.seed, r.test_size) s ON true
JOIN qpo.generations g ON g.run_id = r.id AND g.loop = $2 AND g.purpose = 'test'
                      AND g.item_id = s.item_id
JOIN qpo.task_items i ON i.task = r.task AND i.item_id = g.item_id
WHERE r.id = $1 AND s.ord % $4 = $3
ORDER BY s.ord;

-- name: reward_test_items
-- $1 run, $2 shard, $3 shards: the run's test sample items of this shard (baseline scoring).
SELECT i.item_id, i.query, i.fields::text AS fields, i.label, i.answer
FROM qpo.runs r
JOIN LATERAL qpo.test_sample(r.task, r.seed, r.test_size) s ON true
JOIN qpo.task_items i ON i.task = r.task AND i.item_id = s.item_id
WHERE r.id = $1 AND s.ord % $3 = $2
ORDER BY s.ord;

-- name: reward_source_prompts
-- $1 task, $2 setting, $3 target: D_0's distinct source prompts, best mean raw reward first
-- (the best single prompt is the first; the oracle scores them all).
SELECT prompt, avg(raw_reward) AS mean_raw, count(*) AS queries
FROM qpo.d0_records
WHERE task = $1 AND setting = $2 AND target = $3
GROUP BY prompt
ORDER BY avg(raw_reward) DESC, prompt;

-- name: reward_policy_mode
-- $1 run, $2 loop: the policy's most frequent greedy test prompt of the loop (ties: the
-- smallest text) and how many test items it was written for.
SELECT prompt, count(*) AS items
FROM qpo.generations
WHERE run_id = $1 AND loop = $2 AND purpose = 'test'
GROUP BY prompt
ORDER BY count(*) DESC, prompt
LIMIT 1;

-- name: reward_train_sample
-- $1 task, $2 seed, $3 n: the d0 job's seeded sample of train items.
SELECT i.item_id, i.query, i.fields::text AS fields, i.label, i.answer
FROM qpo.seeded_order($1, 'train', $2::integer, 'd0') o
JOIN qpo.task_items i ON i.task = $1 AND i.item_id = o.item_id
WHERE o.ord < $3::bigint
ORDER BY o.ord;

-- name: reward_train_ids
-- $1 task: train item ids (and labels, for class-balanced sets) in the order demonstration
-- indices refer to.
SELECT item_id, label FROM qpo.task_items WHERE task = $1 AND split = 'train' ORDER BY item_id;

-- name: reward_items_by_id
-- $1 task, $2 '{id,...}': demonstration items.
SELECT item_id, fields::text AS fields, label FROM qpo.task_items
WHERE task = $1 AND item_id = ANY ($2::integer[]);

-- name: reward_d0_range
-- $1 task, $2 setting, $3 target: D_0's raw reward range for normalisation.
SELECT min(raw_reward) AS min_raw, max(raw_reward) AS max_raw, count(*) AS records
FROM qpo.d0_records
WHERE task = $1 AND setting = $2 AND target = $3;

-- name: reward_cache_lookup
-- $1 request hash, $2 target: the first successful live call with this exact request.
SELECT id, response FROM qpo.llm_calls
WHERE request_hash = $1 AND target = $2 AND status = 'ok' AND cacheable AND NOT cache_hit
ORDER BY id LIMIT 1;

-- name: reward_insert_call
INSERT INTO qpo.llm_calls (target, endpoint, model, request_hash, cacheable, request, response,
                           status, error, http_status, latency_ms, prompt_tokens,
                           completion_tokens, attempt, will_retry, cache_hit, cached_call_id,
                           job_id, job_attempt, worker)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
RETURNING id;
