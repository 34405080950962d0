-- Checkpoints in PostgreSQL (`qpo worker --artifacts pg`, workers/trainer/ckpt_pg.c): GPU
-- workers on different machines share only the database, so a retry on another host must find
-- the epochs the killed attempt saved, and generate must find the loop's weights.
--
-- An epoch is one row of qpo.checkpoint_epochs (its epoch.json) and one row per file in
-- qpo.artifacts (policy.safetensors and its .state), whose bytes are a large object. All of
-- them are written in one transaction that checks the saving job's fencing token, so a killed
-- or fenced-out worker leaves nothing visible: the large objects it created roll back with it.

CREATE TABLE qpo.checkpoint_epochs (
    run_id bigint NOT NULL REFERENCES qpo.runs (id),
    loop integer NOT NULL CHECK (loop >= 1),
    epoch integer NOT NULL CHECK (epoch >= 1),
    -- What epoch.json holds in a checkpoint folder: losses, sha256 of the weights, held-out
    -- CE and the best epoch so far (workers/trainer/ckpt.c).
    info jsonb NOT NULL CHECK (jsonb_typeof(info) = 'object'),
    job_id bigint REFERENCES qpo.jobs (id),
    attempt integer,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, loop, epoch)
);

CREATE TABLE qpo.artifacts (
    run_id bigint NOT NULL,
    loop integer NOT NULL,
    epoch integer NOT NULL,
    name text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*$'),
    -- The bytes, owned by this row: deleting the row unlinks it (trigger below).
    oid oid NOT NULL UNIQUE,
    -- Computed while streaming the bytes in; every reader recomputes it while streaming out.
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    bytes bigint NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (run_id, loop, epoch, name),
    FOREIGN KEY (run_id, loop, epoch) REFERENCES qpo.checkpoint_epochs ON DELETE CASCADE
);

-- Pruning an epoch deletes its row; the cascade reaches the artifacts and this trigger frees
-- their large objects, so no path leaves orphaned bytes in pg_largeobject.
CREATE FUNCTION qpo.artifacts_unlink() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM lo_unlink(OLD.oid);
    RETURN OLD;
END $$;

CREATE TRIGGER artifacts_unlink AFTER DELETE ON qpo.artifacts
    FOR EACH ROW EXECUTE FUNCTION qpo.artifacts_unlink();

-- A loop's final checkpoint either names a file ('/...') or an epoch kept in the database
-- ('pg:run-R/loop-T/epoch-K/policy.safetensors' with artifact_epoch = K). The foreign key pins
-- the published epoch: pruning cannot delete it.
ALTER TABLE qpo.checkpoints ADD COLUMN artifact_epoch integer;
ALTER TABLE qpo.checkpoints
    ADD FOREIGN KEY (run_id, loop, artifact_epoch) REFERENCES qpo.checkpoint_epochs;
ALTER TABLE qpo.checkpoints DROP CONSTRAINT checkpoints_path_check;
ALTER TABLE qpo.checkpoints DROP CONSTRAINT checkpoints_state_path_check;
ALTER TABLE qpo.checkpoints ADD CONSTRAINT checkpoints_path_check CHECK (
    CASE WHEN artifact_epoch IS NULL
         THEN path LIKE '/%' AND (state_path IS NULL OR state_path LIKE '/%')
         ELSE path LIKE 'pg:%' AND (state_path IS NULL OR state_path LIKE 'pg:%') END);
