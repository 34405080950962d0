-- Experiments, runs, task data and the records that flow between stages. This file is the
-- contract between the scheduler (writes experiments, runs, targets, task_items, plans jobs),
-- the trainer workers (write generations and run_records) and the reward workers (read
-- generations, write rewards and scores, build d0_records). See docs/data-model.md.

CREATE TABLE qpo.experiments (
    id bigserial PRIMARY KEY,
    name text NOT NULL CHECK (name <> ''),
    config jsonb NOT NULL CHECK (jsonb_typeof(config) = 'object'),
    state text NOT NULL DEFAULT 'submitted'
        CHECK (state IN ('submitted', 'planned', 'running', 'done', 'failed', 'invalid', 'cancelled')),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The config with every default filled in (scheduler/config.c), written when the
    -- experiment is planned: workers read hyper-parameters from here, never re-derive them.
    resolved_config jsonb CHECK (resolved_config IS NULL OR jsonb_typeof(resolved_config) = 'object'),
    CHECK ((state = 'invalid') = (error IS NOT NULL) OR state = 'failed'),
    CHECK (state IN ('submitted', 'invalid', 'cancelled') OR resolved_config IS NOT NULL)
);

-- Target LLM endpoints, upserted from experiment configs. API keys are never stored: config
-- names an environment variable or a file the worker reads.
CREATE TABLE qpo.targets (
    name text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_.:-]+$'),
    base_url text NOT NULL CHECK (base_url ~ '^https?://'),
    model text NOT NULL CHECK (model <> ''),
    config jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (NOT (config ? 'api_key'))
);

CREATE TABLE qpo.runs (
    id bigserial PRIMARY KEY,
    experiment_id bigint NOT NULL REFERENCES qpo.experiments (id),
    task text NOT NULL,
    setting text NOT NULL CHECK (setting IN ('zero_shot', 'few_shot')),
    target text NOT NULL REFERENCES qpo.targets (name),
    seed integer NOT NULL CHECK (seed >= 0),
    loops integer NOT NULL CHECK (loops BETWEEN 1 AND 100),
    state text NOT NULL DEFAULT 'planned'
        CHECK (state IN ('planned', 'running', 'done', 'failed', 'cancelled')),
    error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- The sampling shape, copied from the resolved config so the selection functions
    -- (qpo.collect_batch, qpo.test_sample) need nothing but the run.
    collect_batches integer NOT NULL DEFAULT 10 CHECK (collect_batches >= 1),
    collect_batch_size integer NOT NULL DEFAULT 100 CHECK (collect_batch_size >= 1),
    test_size integer NOT NULL DEFAULT 100 CHECK (test_size >= 1),
    test_shards integer NOT NULL DEFAULT 4 CHECK (test_shards >= 1),
    UNIQUE (experiment_id, task, setting, target, seed)
);
CREATE INDEX runs_experiment ON qpo.runs (experiment_id);

ALTER TABLE qpo.jobs ADD CONSTRAINT jobs_run_id_fkey
    FOREIGN KEY (run_id) REFERENCES qpo.runs (id);

-- One row per item of a task, with its seeded split (docs/qpo-recipe.md section 5).
-- query: what the policy sees; fields: the template's fields (text, passage, question, ...,
-- and for multiple choice "choices": [4 strings]); label: gold index (classification, multiple
-- choice); answer: gold number as text (math).
CREATE TABLE qpo.task_items (
    task text NOT NULL,
    item_id integer NOT NULL CHECK (item_id >= 0),
    split text NOT NULL CHECK (split IN ('train', 'collect', 'dev', 'test')),
    upstream_split text NOT NULL,
    upstream_index integer NOT NULL,
    query text NOT NULL,
    fields jsonb NOT NULL CHECK (jsonb_typeof(fields) = 'object'),
    label integer,
    answer text,
    PRIMARY KEY (task, item_id),
    UNIQUE (task, upstream_split, upstream_index),
    CHECK ((label IS NULL) <> (answer IS NULL))
);
CREATE INDEX task_items_split ON qpo.task_items (task, split, item_id);

-- D_0 per (task, setting, target): imported from a released file or built by 'd0' jobs.
-- acc: the pair's per-query accuracy (few-shot: over 5 demonstration sets; zero-shot: 0/1);
-- avg_acc: the prompt's task-level accuracy; raw_reward per docs/qpo-recipe.md section 4.
CREATE TABLE qpo.d0_records (
    id bigserial PRIMARY KEY,
    task text NOT NULL,
    setting text NOT NULL CHECK (setting IN ('zero_shot', 'few_shot')),
    target text NOT NULL,
    source text NOT NULL,
    prompt_method text NOT NULL DEFAULT '',
    query text NOT NULL,
    label integer,
    answer text,
    prompt text NOT NULL,
    acc double precision NOT NULL CHECK (acc BETWEEN 0 AND 1),
    avg_acc double precision NOT NULL CHECK (avg_acc BETWEEN 0 AND 1),
    raw_reward double precision NOT NULL,
    extra jsonb NOT NULL DEFAULT '{}',
    UNIQUE (task, setting, target, query, prompt)
);

-- Prompts written by the policy: purpose 'collect' (loop t's 10 batches, sampled) or 'test'
-- (greedy, for the test sample). Written once by generate / evaluate-generate jobs.
CREATE TABLE qpo.generations (
    run_id bigint NOT NULL REFERENCES qpo.runs (id),
    loop integer NOT NULL CHECK (loop >= 1),
    purpose text NOT NULL CHECK (purpose IN ('collect', 'test')),
    batch integer NOT NULL CHECK (batch >= 0),
    item_id integer NOT NULL,
    prompt text NOT NULL,
    job_id bigint REFERENCES qpo.jobs (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, loop, purpose, item_id)
);
CREATE INDEX generations_batch ON qpo.generations (run_id, loop, purpose, batch);

-- D_t additions of a run: records kept by merge(t) (raw reward > the D_0 minimum).
CREATE TABLE qpo.run_records (
    run_id bigint NOT NULL REFERENCES qpo.runs (id),
    loop integer NOT NULL CHECK (loop >= 1),
    item_id integer NOT NULL,
    query text NOT NULL,
    prompt text NOT NULL,
    raw_reward double precision NOT NULL,
    PRIMARY KEY (run_id, query, prompt)
);
