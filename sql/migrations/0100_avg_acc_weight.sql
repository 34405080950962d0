-- The weight of the prompt's avg_acc in the raw reward (config reward.avg_acc_weight;
-- common/recipe/reward_formula.h). The authors' 10 is the default: rows written before this
-- migration were computed with it. A run keeps the weight it was planned with, so its reward
-- jobs compute what its D_0 was built with; D_0's records keep the weight their raw_reward
-- was computed with, so one (task, setting, target) never mixes two rewards (the importer and
-- the d0 job refuse to add records of another weight).
ALTER TABLE qpo.runs ADD COLUMN avg_acc_weight double precision NOT NULL DEFAULT 10
    CHECK (avg_acc_weight BETWEEN 0 AND 100);
ALTER TABLE qpo.d0_records ADD COLUMN avg_acc_weight double precision NOT NULL DEFAULT 10
    CHECK (avg_acc_weight BETWEEN 0 AND 100);

-- run_data_problem (0011) also names a D_0 built with another avg_acc weight than the run's:
-- training on it would condition the policy on a reward its own collected pairs do not use.
CREATE OR REPLACE FUNCTION qpo.run_data_problem(p_run bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r qpo.runs%ROWTYPE;
    n_train bigint;
    n_collect bigint;
    n_test bigint;
    n_d0 bigint;
    other_weight double precision;
    needs_train integer;
BEGIN
    SELECT * INTO r FROM qpo.runs WHERE id = p_run;
    IF NOT FOUND THEN
        RETURN format('run %s does not exist', p_run);
    END IF;
    SELECT count(*) FILTER (WHERE split = 'train'), count(*) FILTER (WHERE split = 'collect'),
           count(*) FILTER (WHERE split = 'test')
      INTO n_train, n_collect, n_test
      FROM qpo.task_items WHERE task = r.task;
    -- Few-shot prompts carry 6 demonstrations drawn from train.
    needs_train := CASE WHEN r.setting = 'few_shot' THEN 6 ELSE 1 END;
    IF n_train < needs_train OR n_collect = 0 OR n_test = 0 THEN
        RETURN format('task %s is not imported (train %s, collect %s, test %s items): run '
                      '''qpo data import %s FILE...'' with its upstream files, then '
                      '''qpo resume %s''', r.task, n_train, n_collect, n_test, r.task,
                      r.experiment_id);
    END IF;
    SELECT count(*), min(avg_acc_weight) FILTER (WHERE avg_acc_weight <> r.avg_acc_weight)
      INTO n_d0, other_weight
      FROM qpo.d0_records
     WHERE task = r.task AND setting = r.setting AND target = r.target;
    IF n_d0 = 0 THEN
        RETURN format('no D_0 for %s/%s/%s: run ''qpo data import-d0 FILE --task %s --setting %s '
                      '--target %s'', then ''qpo resume %s''', r.task, r.setting, r.target,
                      r.task, r.setting, r.target, r.experiment_id);
    END IF;
    IF other_weight IS NOT NULL THEN
        RETURN format('D_0 for %s/%s/%s was computed with reward.avg_acc_weight %s, the run asks '
                      'for %s: import it again with --avg-acc-weight %s under another target '
                      'name, or set the config''s reward.avg_acc_weight to %s', r.task,
                      r.setting, r.target, other_weight, r.avg_acc_weight, r.avg_acc_weight,
                      other_weight);
    END IF;
    RETURN NULL;
END $$;
