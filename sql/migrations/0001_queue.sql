-- The job queue. Column names are a contract: users query qpo.jobs directly.
-- State machine (docs/state_machine.md):
--   blocked -> queued (all parents succeeded) | cancelled (a parent dead or cancelled)
--   queued -> running (claimed) | cancelled
--   running -> succeeded | failed (will retry) | dead (attempts exhausted or fatal)
--           | queued (released on shutdown, attempt not spent) | cancelled
--   failed -> running (claimed again after run_after) | cancelled | dead
--   dead, cancelled -> queued (qpo jobs retry / qpo resume: fresh attempts)

CREATE TABLE qpo.job_kinds (
    kind text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_-]*$'),
    job_class text NOT NULL CHECK (job_class IN ('cpu', 'gpu')),
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1)
);

INSERT INTO qpo.job_kinds (kind, job_class) VALUES
    ('noop', 'cpu'), ('sleep', 'cpu'), ('fail', 'cpu'),
    ('train', 'gpu'), ('generate', 'gpu'), ('evaluate-generate', 'gpu'),
    ('reward', 'cpu'), ('score', 'cpu'), ('merge', 'cpu'), ('d0', 'cpu'), ('import-check', 'cpu');

CREATE TABLE qpo.jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_-]*$'),
    class text NOT NULL CHECK (class IN ('cpu', 'gpu')),
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('blocked', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    priority integer NOT NULL DEFAULT 0,
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer NOT NULL CHECK (max_attempts >= 1),
    run_after timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    payload jsonb NOT NULL DEFAULT '{}',
    result jsonb,
    last_error text,
    idempotency_key text UNIQUE,
    run_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    CHECK (attempt <= max_attempts),
    -- A running job always has a lease; no other state holds one.
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (state <> 'running' OR attempt >= 1),
    CHECK (state IN ('succeeded', 'dead', 'cancelled') = (finished_at IS NOT NULL)),
    CHECK (result IS NULL OR state = 'succeeded')
);
