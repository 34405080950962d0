-- Dependencies between jobs and the append-only history of every state change.

-- child runs only after every parent succeeded; a dead or cancelled parent cancels it.
CREATE TABLE qpo.job_deps (
    child_id bigint NOT NULL REFERENCES qpo.jobs (id),
    parent_id bigint NOT NULL REFERENCES qpo.jobs (id),
    PRIMARY KEY (child_id, parent_id),
    CHECK (child_id <> parent_id)
);
CREATE INDEX job_deps_parent_idx ON qpo.job_deps (parent_id);

-- One row per transition, written by the triggers on qpo.jobs (0003), never changed.
-- No foreign key to qpo.jobs: the check would cost a lookup per event on the hot path, and
-- the triggers are the only writers. from_state is NULL for the row written on insert.
-- The key leads with job_id: one index serves both uniqueness and "the history of job N".
CREATE TABLE qpo.job_events (
    id bigserial NOT NULL,
    job_id bigint NOT NULL,
    from_state text,
    to_state text NOT NULL,
    attempt integer NOT NULL,
    worker text,
    at timestamptz NOT NULL DEFAULT now(),
    error text,
    PRIMARY KEY (job_id, id)
);

CREATE FUNCTION qpo.job_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'qpo.job_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'the history of a job is never rewritten; add events through qpo.jobs';
END;
$$;

CREATE TRIGGER job_events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON qpo.job_events
    FOR EACH STATEMENT EXECUTE FUNCTION qpo.job_events_refuse_change();
