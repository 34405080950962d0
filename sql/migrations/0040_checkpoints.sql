-- The trainer workers' table (docs/data-model.md): the final checkpoint of each (run, loop),
-- written by the train job in its completing transaction, so a row exists exactly when the
-- loop's training succeeded. generate, evaluate-generate and train(t+1) find the weights
-- through it and check them against sha256 before use, so a file changed or cut short on
-- disk is refused instead of silently producing prompts.

CREATE TABLE qpo.checkpoints (
    run_id bigint NOT NULL REFERENCES qpo.runs (id),
    loop integer NOT NULL CHECK (loop >= 1),
    -- Absolute path of policy.safetensors (qpo-pgdt format); state_path: the training state
    -- saved beside the last epoch (AdamW moments, data order), kept for audit and fine-tuning.
    path text NOT NULL CHECK (path LIKE '/%'),
    state_path text CHECK (state_path IS NULL OR state_path LIKE '/%'),
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes bigint NOT NULL CHECK (bytes > 0),
    epochs integer NOT NULL CHECK (epochs >= 1),
    records integer NOT NULL CHECK (records >= 1),
    final_loss double precision NOT NULL,
    final_ce double precision NOT NULL,
    final_mse double precision NOT NULL,
    -- The policy's shape ({"n_layer", "n_head", "d", "vocab", "ctx"}) and how it was trained:
    -- backend, init, lr, seed, resumed_from_epoch (0 when no attempt was interrupted).
    config jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    training jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(training) = 'object'),
    job_id bigint REFERENCES qpo.jobs (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, loop)
);
