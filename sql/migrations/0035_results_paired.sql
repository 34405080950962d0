-- Per-item scores and the results view with the oracle and query dependence (issue 9).

-- One row per (run, loop, source, test item): what the paired bootstrap of 'qpo results'
-- resamples. The oracle's sources 'oracle:K' collapse into one source 'oracle' whose
-- per-item accuracy is the best source prompt's on that item.
CREATE VIEW qpo.item_scores AS
SELECT r.experiment_id, r.id AS run_id, r.task, r.setting, r.target, r.seed, s.loop,
       CASE WHEN s.source LIKE 'oracle:%' THEN 'oracle' ELSE s.source END AS source,
       s.item_id, max(s.acc) AS acc, count(*) AS prompts
FROM qpo.eval_scores s
JOIN qpo.runs r ON r.id = s.run_id
GROUP BY r.experiment_id, r.id, r.task, r.setting, r.target, r.seed, s.loop,
         CASE WHEN s.source LIKE 'oracle:%' THEN 'oracle' ELSE s.source END, s.item_id;

-- Distinct greedy test prompts the policy wrote per run and loop: 1 means it learnt one
-- prompt, not a query-dependent policy.
CREATE VIEW qpo.test_prompt_diversity AS
SELECT r.experiment_id, r.id AS run_id, r.task, r.setting, r.target, r.seed, g.loop,
       count(DISTINCT g.prompt) AS distinct_prompts, count(*) AS items
FROM qpo.generations g
JOIN qpo.runs r ON r.id = g.run_id
WHERE g.purpose = 'test'
GROUP BY r.experiment_id, r.id, r.task, r.setting, r.target, r.seed, g.loop;

-- Same columns as before plus distinct_prompts (qpo rows: mean over seeds); std_acc is NULL
-- for one seed, where a spread is unknown rather than zero. The oracle is one source.
DROP VIEW qpo.results;
CREATE VIEW qpo.results AS
WITH per_run AS (
    SELECT experiment_id, run_id, task, setting, target, seed, loop, source,
           avg(acc) AS acc, count(*) AS items
    FROM qpo.item_scores
    GROUP BY experiment_id, run_id, task, setting, target, seed, loop, source
)
SELECT p.experiment_id, p.task, p.setting, p.target, p.loop, p.source,
       count(*) AS seeds,
       avg(p.acc) AS mean_acc,
       CASE WHEN count(*) > 1 THEN stddev_pop(p.acc) END AS std_acc,
       min(p.items) AS items_min,
       max(p.items) AS items_max,
       array_agg(p.seed ORDER BY p.seed) AS seed_list,
       array_agg(p.acc ORDER BY p.seed) AS seed_acc,
       avg(d.distinct_prompts) FILTER (WHERE p.source = 'qpo') AS distinct_prompts
FROM per_run p
LEFT JOIN qpo.test_prompt_diversity d ON d.run_id = p.run_id AND d.loop = p.loop
GROUP BY p.experiment_id, p.task, p.setting, p.target, p.loop, p.source;
