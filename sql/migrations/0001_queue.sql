-- The job queue. Column names are a contract: users query qpo.jobs directly.
-- State machine: docs/state_machine.md. Transitions are recorded in qpo.job_events by the
-- triggers of 0003_queue_triggers.sql, so every writer (workers, CLI, plain SQL) is audited.

CREATE TABLE qpo.job_kinds (
    kind text PRIMARY KEY CHECK (kind ~ '^[a-z][a-z0-9_-]*$'),
    job_class text NOT NULL CHECK (job_class IN ('cpu', 'gpu')),
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts >= 1)
);

INSERT INTO qpo.job_kinds (kind, job_class) VALUES
    ('noop', 'cpu'), ('sleep', 'cpu'), ('fail', 'cpu'), ('test-insert', 'cpu'),
    ('train', 'gpu'), ('generate', 'gpu'), ('evaluate-generate', 'gpu'),
    ('reward', 'cpu'), ('score', 'cpu'), ('merge', 'cpu'), ('d0', 'cpu'), ('import-check', 'cpu');

CREATE TABLE qpo.jobs (
    id bigserial PRIMARY KEY,
    kind text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_-]*$'),
    -- class and max_attempts may be left out: the BEFORE INSERT trigger fills them from
    -- qpo.job_kinds (else cpu and 5), so NOT NULL holds after it.
    class text NOT NULL CHECK (class IN ('cpu', 'gpu')),
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('blocked', 'queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    priority integer NOT NULL DEFAULT 0,
    -- attempt is also the fencing token: it only ever grows, so (id, attempt) names one claim.
    attempt integer NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    max_attempts integer NOT NULL CHECK (max_attempts >= 1),
    run_after timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_expires_at timestamptz,
    payload jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(payload) = 'object'),
    result jsonb,
    last_error text,
    idempotency_key text,
    run_id bigint,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- started_at: when the latest attempt was claimed.
    started_at timestamptz,
    finished_at timestamptz,
    CHECK (attempt <= max_attempts),
    -- A running job always has a lease; no other state holds one.
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CHECK (state <> 'running' OR (attempt >= 1 AND started_at IS NOT NULL)),
    CHECK (state IN ('succeeded', 'dead', 'cancelled') = (finished_at IS NOT NULL)),
    CHECK (result IS NULL OR state = 'succeeded'),
    -- A failed job has spent an attempt and says why; it waits for run_after to be retried.
    CHECK (state <> 'failed' OR (attempt >= 1 AND last_error IS NOT NULL)),
    CHECK (state NOT IN ('dead', 'cancelled') OR last_error IS NOT NULL)
);

-- Claiming: the runnable jobs of one class in claim order. Partial, so finished jobs (the
-- bulk of the table over time) cost nothing.
CREATE INDEX jobs_claim_idx ON qpo.jobs (class, priority DESC, run_after, id)
    WHERE state IN ('queued', 'failed');
-- Reaping: running jobs by lease expiry.
CREATE INDEX jobs_lease_idx ON qpo.jobs (lease_expires_at) WHERE state = 'running';
-- Unique among the jobs that have one. Partial, so the (many) jobs without a key add no entry
-- on every update.
CREATE UNIQUE INDEX jobs_idempotency_key_idx ON qpo.jobs (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Blocked jobs, for "is there unfinished work?" (queued and failed ones are in the claim index).
CREATE INDEX jobs_blocked_idx ON qpo.jobs (class) WHERE state = 'blocked';
CREATE INDEX jobs_run_idx ON qpo.jobs (run_id) WHERE run_id IS NOT NULL;
