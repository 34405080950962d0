-- The audit trail of the reward workers (docs/data-model.md): every HTTP attempt made to a
-- target LLM, every reward and every evaluation score. All three are append-only: a row is a
-- fact about what happened, so a trigger refuses UPDATE and DELETE (TRUNCATE too).

CREATE FUNCTION qpo.audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qpo.% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'audit rows are never changed; write a new row instead';
END;
$$;

-- One row per HTTP attempt as it ended (success or not), committed at once on the job's
-- connection so it survives the job failing or its worker being killed. Also the response
-- cache: a temperature-0 request whose hash matches an 'ok' live row of the same target is
-- answered from that row's response. A cache hit gets its own row (cache_hit, attempt 0,
-- cached_call_id naming the live row, no bodies), so hits are counted per job; hits cost
-- nothing, so their rows are written with the job's outputs when it completes.
CREATE TABLE qpo.llm_calls (
    id bigserial PRIMARY KEY,
    target text NOT NULL,
    endpoint text NOT NULL CHECK (endpoint IN ('/v1/completions', '/v1/chat/completions')),
    model text NOT NULL,
    request_hash text NOT NULL CHECK (request_hash ~ '^[0-9a-f]{64}$'),
    cacheable boolean NOT NULL,
    request text,               -- the exact JSON body sent (keys sorted); NULL on a cache hit
    response text,              -- the body as received (may be partial); NULL when none
    status text NOT NULL,       -- qpo_llm_status_name(): ok, rate_limited, dropped, ...
    error text NOT NULL DEFAULT '',
    http_status integer,        -- NULL: no HTTP response
    latency_ms double precision NOT NULL DEFAULT 0 CHECK (latency_ms >= 0),
    prompt_tokens integer,
    completion_tokens integer,
    attempt integer NOT NULL CHECK (attempt >= 0),
    will_retry boolean NOT NULL DEFAULT false,
    cache_hit boolean NOT NULL DEFAULT false,
    cached_call_id bigint REFERENCES qpo.llm_calls (id),
    job_id bigint REFERENCES qpo.jobs (id),
    job_attempt integer,
    worker text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (cache_hit = (cached_call_id IS NOT NULL)),
    CHECK (cache_hit = (attempt = 0)),
    CHECK (cache_hit OR request IS NOT NULL),
    CHECK (status <> 'ok' OR cache_hit OR response IS NOT NULL)
);
CREATE INDEX llm_calls_cache ON qpo.llm_calls (request_hash, target, id)
    WHERE status = 'ok' AND cacheable AND NOT cache_hit;
CREATE INDEX llm_calls_job ON qpo.llm_calls (job_id);

-- One row per (run, loop, item) of a collect batch, written in the reward job's completing
-- transaction. nlls: classification zero-shot [label]; few-shot [set][label]. prediction /
-- correct: zero-shot and math (few-shot: predictions per set and acc_q instead).
CREATE TABLE qpo.rewards (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES qpo.runs (id),
    loop integer NOT NULL CHECK (loop >= 1),
    batch integer NOT NULL CHECK (batch >= 0),
    item_id integer NOT NULL,
    query text NOT NULL,
    prompt text NOT NULL,
    nlls double precision[],
    completion_nll double precision,
    completion text,
    prediction text,
    correct boolean,
    predictions integer[],
    acc_q double precision CHECK (acc_q BETWEEN 0 AND 1),
    avg_acc double precision NOT NULL CHECK (avg_acc BETWEEN 0 AND 1),
    raw_reward double precision NOT NULL,
    norm_reward double precision NOT NULL,
    d0_min_raw double precision NOT NULL,
    d0_max_raw double precision NOT NULL,
    call_ids bigint[] NOT NULL CHECK (cardinality(call_ids) >= 1),
    job_id bigint REFERENCES qpo.jobs (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, loop, item_id),
    CHECK ((correct IS NULL) = (acc_q IS NOT NULL))
);
CREATE INDEX rewards_batch ON qpo.rewards (run_id, loop, batch);

-- Per-item results of score jobs: source 'qpo' (the policy's test prompts of that loop) or
-- 'baseline:NAME' (a fixed prompt, loop 0). acc: 0/1, or few-shot the mean over 10 sets.
CREATE TABLE qpo.eval_scores (
    id bigserial PRIMARY KEY,
    run_id bigint NOT NULL REFERENCES qpo.runs (id),
    loop integer NOT NULL CHECK (loop >= 0),
    source text NOT NULL CHECK (source = 'qpo' OR source ~ '^baseline:.+'),
    shard integer NOT NULL CHECK (shard >= 0),
    item_id integer NOT NULL,
    prompt text NOT NULL,
    nlls double precision[],
    completion_nll double precision,
    completion text,
    prediction text,
    predictions integer[],
    acc double precision NOT NULL CHECK (acc BETWEEN 0 AND 1),
    call_ids bigint[] NOT NULL CHECK (cardinality(call_ids) >= 1),
    job_id bigint REFERENCES qpo.jobs (id),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (run_id, loop, source, item_id)
);

CREATE TRIGGER llm_calls_append_only BEFORE UPDATE OR DELETE ON qpo.llm_calls
    FOR EACH ROW EXECUTE FUNCTION qpo.audit_refuse_change();
CREATE TRIGGER llm_calls_no_truncate BEFORE TRUNCATE ON qpo.llm_calls
    FOR EACH STATEMENT EXECUTE FUNCTION qpo.audit_refuse_change();
CREATE TRIGGER rewards_append_only BEFORE UPDATE OR DELETE ON qpo.rewards
    FOR EACH ROW EXECUTE FUNCTION qpo.audit_refuse_change();
CREATE TRIGGER rewards_no_truncate BEFORE TRUNCATE ON qpo.rewards
    FOR EACH STATEMENT EXECUTE FUNCTION qpo.audit_refuse_change();
CREATE TRIGGER eval_scores_append_only BEFORE UPDATE OR DELETE ON qpo.eval_scores
    FOR EACH ROW EXECUTE FUNCTION qpo.audit_refuse_change();
CREATE TRIGGER eval_scores_no_truncate BEFORE TRUNCATE ON qpo.eval_scores
    FOR EACH STATEMENT EXECUTE FUNCTION qpo.audit_refuse_change();
