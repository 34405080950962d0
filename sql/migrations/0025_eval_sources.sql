-- Score sources beyond the policy and fixed baselines (issue 9): 'oracle:K' is the K-th source
-- prompt of D_0 (ranked by mean raw reward, best first) scored on the test sample, so the
-- per-query oracle is the mean over items of the best of them. The program-chosen baselines
-- use the existing 'baseline:NAME' form: 'baseline:best_single' (loop 0) and
-- 'baseline:policy_mode' (loop t), names the config refuses for user baselines.
ALTER TABLE qpo.eval_scores DROP CONSTRAINT eval_scores_source_check;
ALTER TABLE qpo.eval_scores ADD CONSTRAINT eval_scores_source_check
    CHECK (source = 'qpo' OR source ~ '^baseline:.+' OR source ~ '^oracle:[0-9]+$');
