-- Training curves (docs/data-model.md): one row per logged optimizer step of a train job,
-- written WHILE the job runs (autocommitted in batches on the job's own connection), so
-- `qpo status` and plain SQL can follow a loss curve before the loop's checkpoint exists.
-- These rows are telemetry, not the job's result: a failed attempt's rows stay.
--
-- Idempotence: a resumed attempt replays the steps after its last saved epoch bit for bit
-- (same data order, same dropout draws), so (run, loop, step) names one value whatever the
-- attempt: the key is that triple and writers use ON CONFLICT DO NOTHING, keeping the first
-- attempt's row (its time and tokens/s are the first attempt's too). An attempt that starts
-- the loop over (its checkpoints did not fit) deletes the loop's rows past its starting
-- step first, so the table never mixes two trajectories. attempt/job_id say who wrote a row.
CREATE TABLE qpo.train_metrics (
    run_id bigint NOT NULL REFERENCES qpo.runs (id),
    loop integer NOT NULL CHECK (loop >= 1),
    step bigint NOT NULL CHECK (step >= 1),    -- optimizer steps taken in this loop (AdamW's t)
    epoch integer NOT NULL CHECK (epoch >= 1), -- the epoch the step belongs to (1-based)
    loss double precision NOT NULL,            -- ce + lambda * mse on the step's batch
    ce double precision NOT NULL,
    mse double precision NOT NULL,
    lambda double precision NOT NULL,
    lr double precision NOT NULL,
    grad_norm double precision NOT NULL CHECK (grad_norm >= 0), -- before clipping
    batch_size integer NOT NULL CHECK (batch_size >= 1),
    tokens_per_s double precision CHECK (tokens_per_s IS NULL OR tokens_per_s >= 0),
    job_id bigint REFERENCES qpo.jobs (id),
    attempt integer,
    logged_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (run_id, loop, step)
);
