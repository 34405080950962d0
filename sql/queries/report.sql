-- Named statements of `qpo report` (cli/report): what each plot of the page draws. Each reads
-- the tables and views the other commands read (qpo.results, qpo.run_cost), so the page says
-- what `qpo results` and `qpo status` say.

-- name: report_experiment
-- $1 experiment: its name, state and its runs' reward.avg_acc_weight (no row: it does not
-- exist).
SELECT name, state,
       coalesce((SELECT string_agg(DISTINCT avg_acc_weight::text, ', ') FROM qpo.runs
                 WHERE experiment_id = $1), 'n/a') AS avg_acc_weights
FROM qpo.experiments WHERE id = $1;

-- name: report_results
-- $1 experiment: qpo.results as `qpo results` shows it (std_acc empty for one seed).
SELECT task, setting, target, source, loop, seeds, mean_acc, std_acc, items_min, items_max
FROM qpo.results WHERE experiment_id = $1
ORDER BY task, setting, target, source <> 'qpo', source, loop;

-- name: report_rewards
-- $1 experiment: each loop's collected pairs in 10 bins of raw reward over the experiment's
-- range (bin 0..9), and the loop's totals: pairs scored and pairs merge kept.
WITH rw AS (
    SELECT w.loop, w.raw_reward FROM qpo.rewards w JOIN qpo.runs r ON r.id = w.run_id
    WHERE r.experiment_id = $1
), lim AS (SELECT min(raw_reward) lo, max(raw_reward) hi FROM rw),
kept AS (
    SELECT k.loop, count(*) n FROM qpo.run_records k JOIN qpo.runs r ON r.id = k.run_id
    WHERE r.experiment_id = $1 GROUP BY k.loop
)
SELECT rw.loop, least(width_bucket(rw.raw_reward, lim.lo, lim.hi + 1e-9 * (1 + abs(lim.hi)), 10),
                      10) - 1 AS bin,
       count(*), lim.lo, lim.hi,
       sum(count(*)) OVER (PARTITION BY rw.loop) AS pairs, coalesce(max(kept.n), 0) AS kept
FROM rw CROSS JOIN lim LEFT JOIN kept ON kept.loop = rw.loop
GROUP BY rw.loop, 2, lim.lo, lim.hi
ORDER BY rw.loop, 2;

-- name: report_loss
-- $1 experiment: the training curves, per epoch (mean over its steps) to keep the page small.
SELECT r.seed, m.loop, m.epoch, avg(m.loss), avg(m.ce), avg(m.mse), avg(m.tokens_per_s)
FROM qpo.train_metrics m JOIN qpo.runs r ON r.id = m.run_id
WHERE r.experiment_id = $1
GROUP BY r.seed, m.loop, m.epoch
ORDER BY r.seed, m.loop, m.epoch;

-- name: report_cost
-- $1 experiment: target-LLM use per loop (loop 0: D_0 and baseline scoring), over all runs.
SELECT loop, sum(calls), sum(cache_hits), sum(prompt_tokens + completion_tokens), sum(errors)
FROM qpo.run_cost WHERE experiment_id = $1
GROUP BY loop ORDER BY loop;
