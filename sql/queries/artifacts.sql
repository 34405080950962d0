-- Named statements of the PostgreSQL checkpoint store (workers/trainer/ckpt_pg.c, migration
-- 0060). Each epoch is written, pruned and read inside a transaction of the caller's.

-- name: artifacts_epoch_insert
-- $1 run, $2 loop, $3 epoch, $4 info (jsonb), $5 job (0: a job run outside the runtime, e.g.
-- by a test), $6 attempt, $7 lease owner. Fenced: a row only while the job is still running
-- under this attempt and owner, the job row held (FOR SHARE) until the transaction ends, so
-- the reaper cannot hand the job to another worker between this check and the commit. An epoch
-- another attempt saved first is kept (training is deterministic: the same bytes). Returns
-- ('inserted' | 'exists' | 'fenced').
WITH fence AS (
    SELECT id FROM qpo.jobs
     WHERE id = $5::bigint AND attempt = $6::integer AND state = 'running'
       AND lease_owner = $7::text
       FOR SHARE
), ins AS (
    INSERT INTO qpo.checkpoint_epochs (run_id, loop, epoch, info, job_id, attempt)
    SELECT $1::bigint, $2::integer, $3::integer, $4::jsonb, nullif($5::bigint, 0),
           nullif($6::integer, 0)
     WHERE $5::bigint = 0 OR EXISTS (SELECT 1 FROM fence)
    ON CONFLICT (run_id, loop, epoch) DO NOTHING
    RETURNING 1
)
SELECT CASE WHEN EXISTS (SELECT 1 FROM ins) THEN 'inserted'
            WHEN $5::bigint <> 0 AND NOT EXISTS (SELECT 1 FROM fence) THEN 'fenced'
            ELSE 'exists' END;

-- name: artifacts_file_insert
-- $1 run, $2 loop, $3 epoch, $4 name, $5 large object, $6 sha256, $7 bytes.
INSERT INTO qpo.artifacts (run_id, loop, epoch, name, oid, sha256, bytes)
VALUES ($1, $2, $3, $4, $5, $6, $7);

-- name: artifacts_prune
-- $1 run, $2 loop, $3 epoch, $4 kept epoch: drops the loop's epochs before $3 except $4 and
-- any a qpo.checkpoints row publishes; their large objects go with them (trigger
-- artifacts_unlink). Returns how many epochs went.
WITH gone AS (
    DELETE FROM qpo.checkpoint_epochs e
     WHERE e.run_id = $1 AND e.loop = $2 AND e.epoch < $3 AND e.epoch <> $4
       AND NOT EXISTS (SELECT 1 FROM qpo.checkpoints c
                        WHERE c.run_id = e.run_id AND c.loop = e.loop
                          AND c.artifact_epoch = e.epoch)
    RETURNING 1
)
SELECT count(*) FROM gone;

-- name: artifacts_epoch_get
-- $1 run, $2 loop, $3 epoch: the epoch's info.
SELECT info::text FROM qpo.checkpoint_epochs WHERE run_id = $1 AND loop = $2 AND epoch = $3;

-- name: artifacts_epoch_latest
-- $1 run, $2 loop: the newest saved epoch and its info.
SELECT epoch, info::text FROM qpo.checkpoint_epochs
 WHERE run_id = $1 AND loop = $2
 ORDER BY epoch DESC
 LIMIT 1;

-- name: artifacts_file_get
-- $1 run, $2 loop, $3 epoch, $4 name: where the bytes are and what they must hash to.
SELECT oid, sha256, bytes FROM qpo.artifacts
 WHERE run_id = $1 AND loop = $2 AND epoch = $3 AND name = $4;

-- name: artifacts_checkpoint_epoch
-- $1 run, $2 loop: the epoch a loop's final checkpoint publishes from the database (NULL when
-- the checkpoint is a file).
SELECT artifact_epoch FROM qpo.checkpoints WHERE run_id = $1 AND loop = $2;

-- name: artifacts_newest_loop
-- $1 run: the newest loop with a final checkpoint (NULL: none yet). qpo prompt's default.
SELECT max(loop) FROM qpo.checkpoints WHERE run_id = $1;

-- name: export_runs
-- $1 experiment, $2 loop: the experiment's runs, each with its loop-$2 checkpoint (NULL
-- columns when that loop is not trained), and the experiment's resolved config.
SELECT r.id, r.task, r.setting, r.target, r.seed, c.sha256, c.bytes, e.resolved_config::text
  FROM qpo.experiments e
  JOIN qpo.runs r ON r.experiment_id = e.id
  LEFT JOIN qpo.checkpoints c ON c.run_id = r.id AND c.loop = $2
 WHERE e.id = $1
 ORDER BY r.id;

-- name: export_prompts
-- $1 run, $2 loop: the loop's prompts (collect and test) with their queries, as JSON lines.
SELECT json_build_object('run_id', g.run_id, 'loop', g.loop, 'purpose', g.purpose,
                         'batch', g.batch, 'item_id', g.item_id, 'query', i.query,
                         'prompt', g.prompt)::text
  FROM qpo.generations g
  JOIN qpo.runs r ON r.id = g.run_id
  JOIN qpo.task_items i ON i.task = r.task AND i.item_id = g.item_id
 WHERE g.run_id = $1 AND g.loop = $2
 ORDER BY g.purpose, g.batch, g.item_id;
