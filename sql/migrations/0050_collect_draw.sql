-- How a loop's collect queries are drawn (config collect.draw).
-- 'independent', the authors' rule (their step3_collect.py): every batch of every loop is its
-- own seeded, class-balanced draw of batch_size items from the collect split, so a loop always
-- scores batches x batch_size pairs and an item may recur across batches and loops.
-- 'exhaustive', qpo's earlier rule: one seeded order walked without repeats (TweetEval's 374
-- validation tweets give a loop 374 pairs, not 1000). Runs planned before this migration keep
-- the rule they were planned with.
ALTER TABLE qpo.runs ADD COLUMN collect_draw text NOT NULL DEFAULT 'exhaustive'
    CHECK (collect_draw IN ('independent', 'exhaustive'));
ALTER TABLE qpo.runs ALTER COLUMN collect_draw SET DEFAULT 'independent';

-- Under independent draws one item may be in two batches of a loop, each with its own sampled
-- prompt and reward: the batch is part of what identifies a generation and a reward.
-- (Numbered after 0020: it changes the reward workers' table too.)
ALTER TABLE qpo.generations DROP CONSTRAINT generations_pkey,
    ADD PRIMARY KEY (run_id, loop, purpose, batch, item_id);
ALTER TABLE qpo.rewards DROP CONSTRAINT rewards_run_id_loop_item_id_key,
    ADD CONSTRAINT rewards_run_id_loop_batch_item_id_key UNIQUE (run_id, loop, batch, item_id);

-- The collect batch of (run, loop, batch); pos: the item's position inside the batch (0-based).
-- independent: the first batch_size of the collect split's class-balanced order seeded by
-- (run seed, loop, batch); the order deals labels round-robin, so every label gets
-- floor or ceil of batch_size / labels while it lasts (the authors' balanced sample).
-- exhaustive: the run's seeded collect order from position (t-1) * batches * batch_size on,
-- wrapping at the end; a loop never repeats an item, so when the split holds fewer items than
-- a loop wants, the loop's positions past the split's size are empty and its last batches
-- come back short or empty.
CREATE OR REPLACE FUNCTION qpo.collect_batch(p_run bigint, p_loop integer, p_batch integer)
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
    IF r.collect_draw = 'independent' THEN
        IF r.collect_batch_size > n THEN
            RAISE EXCEPTION 'collect_batch: run % draws % items per batch but task % has % collect items',
                p_run, r.collect_batch_size, r.task, n
                USING HINT = 'lower collect.batch_size, or set collect.draw to "exhaustive"';
        END IF;
        RETURN QUERY
        SELECT o.ord::integer, o.item_id
        FROM qpo.seeded_order(r.task, 'collect', r.seed, format('collect:%s:%s', p_loop, p_batch)) o
        WHERE o.ord < r.collect_batch_size
        ORDER BY o.ord;
        RETURN;
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
