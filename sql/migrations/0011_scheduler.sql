-- The scheduler's database side: the wake-up for experiments inserted by SQL, the shared
-- deterministic selections (which collect items a batch gets, which test items a run is
-- scored on) and the derivation of run and experiment states from their jobs.

-- An experiment inserted by any client (qpo submit or plain SQL) wakes the schedulers at
-- once; they also poll, so a missed notification only delays planning.
CREATE FUNCTION qpo.experiments_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('qpo_experiments', NEW.id::text);
    RETURN NULL;
END $$;
CREATE TRIGGER experiments_notify AFTER INSERT ON qpo.experiments
    FOR EACH ROW EXECUTE FUNCTION qpo.experiments_notify();

CREATE INDEX experiments_submitted ON qpo.experiments (id) WHERE state = 'submitted';

-- A seeded order over the items of one split, class-balanced: items are ranked inside their
-- label by md5(tag:seed:item_id), then dealt round-robin across labels (rank 1 of every
-- label, then rank 2, ...), so every prefix of length k * (number of labels) is balanced
-- while each label lasts. Math items (no label) form one class: a plain seeded shuffle.
-- md5 rather than hashtext: any client (C, Python) can reproduce the order.
CREATE FUNCTION qpo.seeded_order(p_task text, p_split text, p_seed integer, p_tag text)
RETURNS TABLE (ord bigint, item_id integer, label integer)
LANGUAGE sql STABLE AS $$
    SELECT row_number() OVER (ORDER BY r.rank_in_label, r.label NULLS FIRST, r.item_id) - 1,
           r.item_id, r.label
    FROM (SELECT t.item_id, t.label,
                 row_number() OVER (PARTITION BY t.label
                                    ORDER BY md5(p_tag || ':' || p_seed || ':' || t.item_id),
                                             t.item_id) AS rank_in_label
          FROM qpo.task_items t
          WHERE t.task = p_task AND t.split = p_split) r
$$;

-- The test sample of (task, seed, n): the first n of the seeded test order. ord is the
-- item's position; score job `shard` of `shards` takes the items with ord % shards = shard.
CREATE FUNCTION qpo.test_sample(p_task text, p_seed integer, p_n integer)
RETURNS TABLE (ord bigint, item_id integer)
LANGUAGE sql STABLE AS $$
    SELECT o.ord, o.item_id FROM qpo.seeded_order(p_task, 'test', p_seed, 'test') o
    WHERE o.ord < p_n ORDER BY o.ord
$$;

-- The collect batch of (run, loop, batch): loop t reads the run's seeded collect order
-- from position (t-1) * batches * batch_size on, wrapping at the end, so no item is used
-- twice in a run until the collect split is exhausted, and after that the least recently
-- used come first. A loop never repeats an item: when the split holds fewer items than a
-- loop wants (TweetEval's 374 validation tweets against 10 x 100), the loop's positions past
-- the split's size are empty and its last batches come back short or empty.
-- pos: the item's position inside the batch (0-based).
CREATE FUNCTION qpo.collect_batch(p_run bigint, p_loop integer, p_batch integer)
RETURNS TABLE (pos integer, item_id integer)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r qpo.runs%ROWTYPE;
    n bigint;
    loop_size bigint;
BEGIN
    SELECT * INTO r FROM qpo.runs WHERE id = p_run;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'collect_batch: no run %', p_run;
    END IF;
    IF p_loop < 1 OR p_loop > r.loops OR p_batch < 0 OR p_batch >= r.collect_batches THEN
        RAISE EXCEPTION 'collect_batch: loop % batch % out of range for run %', p_loop, p_batch, p_run
            USING HINT = format('loops 1..%s, batches 0..%s', r.loops, r.collect_batches - 1);
    END IF;
    SELECT count(*) INTO n FROM qpo.task_items t WHERE t.task = r.task AND t.split = 'collect';
    IF n = 0 THEN
        RAISE EXCEPTION 'collect_batch: task % has no collect items', r.task
            USING HINT = format('run ''qpo data import %s FILE...'' first', r.task);
    END IF;
    loop_size := r.collect_batches::bigint * r.collect_batch_size;
    RETURN QUERY
    SELECT (w.q - p_batch::bigint * r.collect_batch_size)::integer, o.item_id
    FROM generate_series(p_batch::bigint * r.collect_batch_size,
                         (p_batch + 1)::bigint * r.collect_batch_size - 1) AS w(q)
    JOIN qpo.seeded_order(r.task, 'collect', r.seed, 'collect') o
      ON o.ord = ((p_loop - 1)::bigint * loop_size + w.q) % n
    WHERE w.q < n
    ORDER BY w.q;
END $$;

-- A run's state from its jobs: any dead or cancelled job fails it (its error names the job,
-- dead ones first), all jobs succeeded is done, any attempt made is running. Cancelled runs
-- (qpo cancel) stay cancelled.
CREATE FUNCTION qpo.refresh_run_state(p_run bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cur text;
    next_state text;
    next_error text;
    total bigint;
    succeeded bigint;
    started bigint;
BEGIN
    SELECT state INTO cur FROM qpo.runs WHERE id = p_run FOR UPDATE;
    IF cur IS NULL OR cur = 'cancelled' THEN
        RETURN cur;
    END IF;
    SELECT count(*), count(*) FILTER (WHERE j.state = 'succeeded'),
           count(*) FILTER (WHERE j.attempt > 0 OR j.state = 'succeeded')
      INTO total, succeeded, started
      FROM qpo.jobs j WHERE j.run_id = p_run;
    -- A cancelled job in a run nobody cancelled means a dead ancestor, possibly in another
    -- run (the d0 build a run shares with its sibling seeds): the run cannot finish either.
    SELECT format('%s job %s (%s) is %s: %s', j.kind, j.id, j.idempotency_key, j.state,
                  coalesce(j.last_error, 'no error recorded'))
      INTO next_error
      FROM qpo.jobs j WHERE j.run_id = p_run AND j.state IN ('dead', 'cancelled')
     ORDER BY j.state = 'cancelled', j.id LIMIT 1;
    next_state := CASE WHEN next_error IS NOT NULL THEN 'failed'
                       WHEN total > 0 AND succeeded = total THEN 'done'
                       WHEN started > 0 THEN 'running'
                       ELSE 'planned' END;
    IF next_state <> cur OR next_error IS DISTINCT FROM (SELECT error FROM qpo.runs WHERE id = p_run) THEN
        UPDATE qpo.runs SET state = next_state, error = next_error, updated_at = now()
         WHERE id = p_run;
    END IF;
    RETURN next_state;
END $$;

-- An experiment's state from its runs: failed as soon as a run failed (resume brings it
-- back), done when every run is done, running once any run started.
CREATE FUNCTION qpo.refresh_experiment_state(p_exp bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    cur text;
    next_state text;
    nruns bigint;
    ndone bigint;
    nfailed bigint;
    nstarted bigint;
BEGIN
    SELECT state INTO cur FROM qpo.experiments WHERE id = p_exp FOR UPDATE;
    IF cur IS NULL OR cur IN ('submitted', 'invalid', 'cancelled') THEN
        RETURN cur;
    END IF;
    PERFORM qpo.refresh_run_state(r.id) FROM qpo.runs r WHERE r.experiment_id = p_exp ORDER BY r.id;
    SELECT count(*), count(*) FILTER (WHERE state = 'done'),
           count(*) FILTER (WHERE state = 'failed'),
           count(*) FILTER (WHERE state IN ('running', 'done', 'failed'))
      INTO nruns, ndone, nfailed, nstarted
      FROM qpo.runs WHERE experiment_id = p_exp AND state <> 'cancelled';
    next_state := CASE WHEN nfailed > 0 THEN 'failed'
                       WHEN nruns > 0 AND ndone = nruns THEN 'done'
                       WHEN nstarted > 0 THEN 'running'
                       ELSE 'planned' END;
    IF next_state <> cur THEN
        UPDATE qpo.experiments SET state = next_state, updated_at = now() WHERE id = p_exp;
    END IF;
    RETURN next_state;
END $$;

-- What a run lacks before its first job can use its data, as the message its import-check
-- job fails with (NULL: nothing lacks). Names the import to run and the resume after it.
CREATE FUNCTION qpo.run_data_problem(p_run bigint) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    r qpo.runs%ROWTYPE;
    n_train bigint;
    n_collect bigint;
    n_test bigint;
    n_d0 bigint;
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
    SELECT count(*) INTO n_d0 FROM qpo.d0_records
     WHERE task = r.task AND setting = r.setting AND target = r.target;
    IF n_d0 = 0 THEN
        RETURN format('no D_0 for %s/%s/%s: run ''qpo data import-d0 FILE --task %s --setting %s '
                      '--target %s'', then ''qpo resume %s''', r.task, r.setting, r.target,
                      r.task, r.setting, r.target, r.experiment_id);
    END IF;
    RETURN NULL;
END $$;
