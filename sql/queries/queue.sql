-- Named statements of the job queue (common/queue, workers/runtime, the jobs CLI).
-- Arrays travel as PostgreSQL array literals; per-job JSON travels as one jsonb array indexed
-- by ordinality, which avoids quoting JSON inside an array literal.

-- name: queue_enqueue_batch
-- $1 kinds text[], $2 payloads jsonb (array), $3 priorities int[], $4 max_attempts int[]
-- (NULL: the kind's default), $5 idempotency keys text[], $6 run ids bigint[], $7 run_after
-- text[] (NULL: now), $8 blocked bool[] (has parents). One row per input, in input order:
-- id (NULL when a concurrent transaction inserted the key: look it up again) and inserted.
WITH input AS (
    SELECT u.*, nextval('qpo.jobs_id_seq') AS new_id
      FROM unnest($1::text[], $3::int[], $4::int[], $5::text[], $6::bigint[], $7::text[],
                  $8::bool[]) WITH ORDINALITY
           AS u(kind, priority, max_attempts, idem_key, run_id, run_after, blocked, ord)
), ins AS (
    -- class and max_attempts filled here rather than by the row trigger: cheaper per row.
    INSERT INTO qpo.jobs (id, kind, class, state, priority, max_attempts, idempotency_key,
                          run_id, run_after, payload)
    SELECT i.new_id, i.kind, coalesce(k.job_class, 'cpu'),
           CASE WHEN i.blocked THEN 'blocked' ELSE 'queued' END, i.priority,
           coalesce(i.max_attempts, k.max_attempts, 5), i.idem_key, i.run_id,
           coalesce(i.run_after::timestamptz, now()),
           coalesce(($2::jsonb) -> (i.ord::int - 1), '{}')
      FROM input i LEFT JOIN qpo.job_kinds k ON k.kind = i.kind
     ORDER BY i.ord
    ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id
)
SELECT coalesce(ins.id, (SELECT j.id FROM qpo.jobs j WHERE j.idempotency_key = input.idem_key)),
       ins.id IS NOT NULL
  FROM input LEFT JOIN ins ON ins.id = input.new_id
 ORDER BY input.ord;

-- name: queue_job_by_key
SELECT id FROM qpo.jobs WHERE idempotency_key = $1;

-- name: queue_add_deps
SELECT qpo.add_job_deps($1::bigint[], $2::bigint[]);

-- name: queue_claim
-- $1 class, $2 kinds text[], $3 how many, $4 worker (lease owner), $5 lease seconds.
WITH c AS (
    SELECT id FROM qpo.jobs
     WHERE state IN ('queued', 'failed') AND class = $1 AND kind = ANY ($2::text[])
       AND run_after <= now() AND attempt < max_attempts
     ORDER BY priority DESC, run_after, id
     LIMIT $3
       FOR UPDATE SKIP LOCKED
)
UPDATE qpo.jobs j
   SET state = 'running', attempt = j.attempt + 1, lease_owner = $4,
       lease_expires_at = now() + make_interval(secs => $5::double precision),
       started_at = now(), last_error = NULL -- the previous attempt's stays in job_events
  FROM c
 WHERE j.id = c.id
RETURNING j.id, j.kind, j.attempt, j.max_attempts, coalesce(j.run_id, 0), j.payload;

-- name: queue_complete_batch
-- Fenced: only rows still running under this (attempt, owner) are completed; the ids
-- returned are the ones that were. $1 ids, $2 attempts, $3 results (jsonb array, null for
-- none), $4 owner.
UPDATE qpo.jobs j
   SET state = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
       result = NULLIF(($3::jsonb) -> (u.ord::int - 1), 'null'::jsonb)
  FROM unnest($1::bigint[], $2::int[]) WITH ORDINALITY AS u(id, attempt, ord)
 WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' AND j.lease_owner = $4
RETURNING j.id;

-- name: queue_complete_and_claim
-- The worker's steady state in one round trip and one commit: complete the finished jobs
-- (fenced, as queue_complete_batch) and claim up to $7 more (as queue_claim). The two sets are
-- disjoint (running vs queued/failed rows). Rows: ('d', id) per completed job, then
-- ('c', id, kind, attempt, max_attempts, run_id, payload) per claimed one.
-- $1 ids, $2 attempts, $3 results, $4 owner, $5 class, $6 kinds, $7 how many, $8 lease s.
WITH done AS (
    UPDATE qpo.jobs j
       SET state = 'succeeded', finished_at = now(), lease_owner = NULL, lease_expires_at = NULL,
           result = NULLIF(($3::jsonb) -> (u.ord::int - 1), 'null'::jsonb)
      FROM unnest($1::bigint[], $2::int[]) WITH ORDINALITY AS u(id, attempt, ord)
     WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' AND j.lease_owner = $4
    RETURNING j.id
), c AS (
    SELECT id FROM qpo.jobs
     WHERE state IN ('queued', 'failed') AND class = $5 AND kind = ANY ($6::text[])
       AND run_after <= now() AND attempt < max_attempts
     ORDER BY priority DESC, run_after, id
     LIMIT $7
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE qpo.jobs j
       SET state = 'running', attempt = j.attempt + 1, lease_owner = $4,
           lease_expires_at = now() + make_interval(secs => $8::double precision),
           started_at = now(), last_error = NULL
      FROM c
     WHERE j.id = c.id
    RETURNING j.id, j.kind, j.attempt, j.max_attempts, coalesce(j.run_id, 0) AS run_id, j.payload
)
SELECT 'd', id, NULL, NULL, NULL, NULL, NULL FROM done
UNION ALL
SELECT 'c', id, kind, attempt, max_attempts, run_id, payload FROM claimed
ORDER BY 1 DESC;

-- name: queue_fence_lock
-- Inside the completing transaction: holds the job while the handler's rows are written.
SELECT 1 FROM qpo.jobs
 WHERE id = $1 AND attempt = $2 AND state = 'running' AND lease_owner = $3
   FOR UPDATE;

-- name: queue_fail
-- $1 id, $2 attempt, $3 owner, $4 error, $5 fatal, $6 backoff base ms, $7 backoff cap ms.
UPDATE qpo.jobs
   SET state = CASE WHEN $5::bool OR attempt >= max_attempts THEN 'dead' ELSE 'failed' END,
       finished_at = CASE WHEN $5::bool OR attempt >= max_attempts THEN now() END,
       run_after = now() + qpo.retry_delay(attempt, $6::double precision, $7::double precision),
       lease_owner = NULL, lease_expires_at = NULL, last_error = $4
 WHERE id = $1 AND attempt = $2 AND state = 'running' AND lease_owner = $3
RETURNING state, run_after;

-- name: queue_release
-- Shutdown: back to queued without spending the attempt. attempt stays (fencing token), so
-- max_attempts moves up by one instead.
UPDATE qpo.jobs j
   SET state = 'queued', max_attempts = j.max_attempts + 1, lease_owner = NULL,
       lease_expires_at = NULL, run_after = now(),
       last_error = format('released by %s at shutdown (attempt %s not counted)', $3::text, j.attempt)
  FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
 WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' AND j.lease_owner = $3
RETURNING j.id;

-- name: queue_unclaim
-- Shutdown, for jobs a worker claimed ahead (its local queue) and never started: as before
-- the claim. Reusing the attempt number is safe because no handler ran under it, so no
-- outcome fenced by it can ever arrive. last_error stays: it is still the last error.
UPDATE qpo.jobs j
   SET state = 'queued', attempt = j.attempt - 1, lease_owner = NULL, lease_expires_at = NULL,
       run_after = now(), started_at = CASE WHEN j.attempt > 1 THEN j.started_at END
  FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
 WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' AND j.lease_owner = $3
RETURNING j.id;

-- name: queue_heartbeat
-- Extends this worker's leases; ids missing from the result were lost (cancelled or reaped).
UPDATE qpo.jobs j
   SET lease_expires_at = now() + make_interval(secs => $4::double precision)
  FROM unnest($1::bigint[], $2::int[]) AS u(id, attempt)
 WHERE j.id = u.id AND j.attempt = u.attempt AND j.state = 'running' AND j.lease_owner = $3
RETURNING j.id;

-- name: queue_reap
-- Jobs whose lease ran out (their worker died or hung) go back to queued, or dead once their
-- attempts are spent. SKIP LOCKED: many reapers at once each take different rows.
WITH r AS (
    SELECT id FROM qpo.jobs
     WHERE state = 'running' AND lease_expires_at < now()
     ORDER BY lease_expires_at
     LIMIT 1000
       FOR UPDATE SKIP LOCKED
)
UPDATE qpo.jobs j
   SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'dead' ELSE 'queued' END,
       finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
       run_after = now(), lease_owner = NULL, lease_expires_at = NULL,
       last_error = format('lease of %s expired during attempt %s', j.lease_owner, j.attempt)
  FROM r
 WHERE j.id = r.id
RETURNING j.id;

-- name: queue_has_unfinished
-- Running jobs do not count: their workers settle them, or the reaper does.
SELECT EXISTS (SELECT 1 FROM qpo.jobs
                WHERE state IN ('queued', 'failed') AND class = $1 AND kind = ANY ($2::text[]))
    OR EXISTS (SELECT 1 FROM qpo.jobs
                WHERE state = 'blocked' AND class = $1 AND kind = ANY ($2::text[]));

-- name: queue_cancel
SELECT qpo.cancel_job($1::bigint, $2);

-- name: queue_retry
SELECT qpo.retry_job($1::bigint);

-- name: queue_kind_known
-- $1 kind: one row when a worker handles it (a job of any other kind stays queued forever).
SELECT 1 FROM qpo.job_kinds WHERE kind = $1;

-- name: queue_missing_parents
-- $1 '{id,...}': those that name no job (the foreign key would only say 23503), '' if none.
SELECT coalesce(string_agg(p::text, ', ' ORDER BY p), '')
  FROM unnest($1::bigint[]) AS p
 WHERE NOT EXISTS (SELECT 1 FROM qpo.jobs j WHERE j.id = p);

-- name: queue_list
-- $1 state or NULL, $2 kind or NULL, $3 run id or NULL, $4 limit.
SELECT id, kind, class, state, priority, attempt, max_attempts, coalesce(lease_owner, ''),
       to_char(created_at, 'YYYY-MM-DD HH24:MI:SS'),
       coalesce(left(split_part(last_error, E'\n', 1), 60), '') -- its message line
  FROM qpo.jobs
 WHERE ($1::text IS NULL OR state = $1) AND ($2::text IS NULL OR kind = $2)
   AND ($3::bigint IS NULL OR run_id = $3)
 ORDER BY id DESC
 LIMIT $4;

-- name: queue_show
SELECT id, kind, class, state, priority, attempt, max_attempts, run_after, lease_owner,
       lease_expires_at, payload, result, last_error, idempotency_key, run_id, created_at,
       started_at, finished_at,
       (SELECT string_agg(parent_id::text, ',' ORDER BY parent_id) FROM qpo.job_deps
         WHERE child_id = j.id)
  FROM qpo.jobs j
 WHERE id = $1;

-- name: queue_events
SELECT to_char(at, 'YYYY-MM-DD HH24:MI:SS.MS'), coalesce(from_state, '-'), to_state, attempt,
       coalesce(worker, ''), coalesce(error, '')
  FROM qpo.job_events
 WHERE job_id = $1
 ORDER BY id;

-- name: queue_latency
-- Enqueue-to-start latency of jobs [$1, $2] in ms: p50, p99, count.
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms), percentile_cont(0.99) WITHIN GROUP (ORDER BY ms), count(*)
  FROM (SELECT extract(epoch FROM started_at - created_at) * 1000 AS ms
          FROM qpo.jobs WHERE id BETWEEN $1 AND $2 AND started_at IS NOT NULL) l;

-- name: queue_bench_clock
-- The server's clock, so a benchmark times start and end on one clock (seconds).
SELECT extract(epoch FROM clock_timestamp());

-- name: queue_bench_finished
-- When the transactions that completed the first and the last of jobs [$1, $2] began (s).
SELECT extract(epoch FROM max(finished_at)), extract(epoch FROM min(finished_at))
  FROM qpo.jobs WHERE id BETWEEN $1 AND $2;

-- name: queue_count_done
SELECT count(*) FROM qpo.jobs
 WHERE id BETWEEN $1 AND $2 AND state IN ('succeeded', 'dead', 'cancelled');
