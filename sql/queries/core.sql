-- Named statements used by common/ (see common/sqlstore.c for the format).

-- name: schema_version
SELECT max(name) FROM qpo.schema_migrations;

-- name: migrate_lock
-- Every qpo process migrating takes the same advisory lock (any fixed number works), so
-- CREATE ... IF NOT EXISTS below never races on the catalogue.
SELECT pg_advisory_lock(7206310851);

-- name: migrate_unlock
SELECT pg_advisory_unlock(7206310851);

-- name: migrate_bootstrap
-- Where applied migrations are recorded, made before the first one runs.
CREATE SCHEMA IF NOT EXISTS qpo;
CREATE TABLE IF NOT EXISTS qpo.schema_migrations (
    name text PRIMARY KEY,
    sha256 text NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at timestamptz NOT NULL DEFAULT now());

-- name: migrate_has_table
SELECT to_regclass('qpo.schema_migrations') IS NOT NULL;

-- name: migrate_applied_sha
-- $1 migration file name.
SELECT sha256 FROM qpo.schema_migrations WHERE name = $1;

-- name: migrate_record
-- $1 migration file name, $2 its sha256.
INSERT INTO qpo.schema_migrations (name, sha256) VALUES ($1, $2);

-- name: worker_listen
-- The worker's wake-ups: new jobs (qpo_jobs) and cancellations (qpo_cancel).
LISTEN qpo_jobs;
LISTEN qpo_cancel;

-- name: scheduler_listen
-- The scheduler's wake-up: a submitted or resumed experiment.
LISTEN qpo_experiments;
