-- The rules every writer of qpo.jobs gets for free: defaults from qpo.job_kinds, one event
-- per transition, dependency resolution, and wake-ups. Statement-level triggers with
-- transition tables, so a 10k-row batch costs one trigger call and one NOTIFY, not 10k.

-- class and max_attempts from the kind's registration; kinds not registered get cpu / 5.
CREATE FUNCTION qpo.jobs_fill_defaults() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k qpo.job_kinds%ROWTYPE;
BEGIN
    SELECT * INTO k FROM qpo.job_kinds WHERE kind = NEW.kind;
    NEW.class := coalesce(NEW.class, k.job_class, 'cpu');
    NEW.max_attempts := coalesce(NEW.max_attempts, k.max_attempts, 5);
    RETURN NEW;
END;
$$;

CREATE TRIGGER jobs_fill_defaults BEFORE INSERT ON qpo.jobs
    FOR EACH ROW WHEN (NEW.class IS NULL OR NEW.max_attempts IS NULL)
    EXECUTE FUNCTION qpo.jobs_fill_defaults();

-- Blocked children whose parents are all succeeded become queued; those with a dead or
-- cancelled parent are cancelled, naming it. The children are locked first: two parents
-- finishing in concurrent transactions then serialise here, and the second sees the first's
-- commit (READ COMMITTED takes a fresh snapshot per statement), so no child stays blocked.
CREATE FUNCTION qpo.resolve_blocked(children bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM qpo.jobs WHERE id = ANY (children) AND state = 'blocked'
        ORDER BY id FOR UPDATE;
    UPDATE qpo.jobs j
       SET state = CASE WHEN r.bad IS NULL THEN 'queued' ELSE 'cancelled' END,
           finished_at = CASE WHEN r.bad IS NULL THEN NULL ELSE now() END,
           run_after = greatest(j.run_after, now()),
           last_error = CASE WHEN r.bad IS NULL THEN j.last_error ELSE r.bad END
      FROM (SELECT d.child_id,
                   bool_and(p.state = 'succeeded') AS all_ok,
                   min(format('parent job %s is %s', p.id, p.state))
                       FILTER (WHERE p.state IN ('dead', 'cancelled')) AS bad
              FROM qpo.job_deps d JOIN qpo.jobs p ON p.id = d.parent_id
             WHERE d.child_id = ANY (children)
             GROUP BY d.child_id) r
     WHERE j.id = r.child_id AND j.state = 'blocked' AND (r.all_ok OR r.bad IS NOT NULL);
END;
$$;

-- Adds parents to a job inserted as 'blocked' in this transaction. FOR SHARE on the parents
-- waits for a parent's completion in flight, and holds off new ones until this transaction
-- commits, so a finishing parent always sees the new edge or this sees its final state.
CREATE FUNCTION qpo.add_job_deps(children bigint[], parents bigint[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    missing bigint;
BEGIN
    PERFORM 1 FROM qpo.jobs WHERE id = ANY (parents) ORDER BY id FOR SHARE;
    SELECT p INTO missing FROM unnest(parents) AS p
     WHERE NOT EXISTS (SELECT 1 FROM qpo.jobs WHERE id = p) LIMIT 1;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'parent job % does not exist', missing
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    INSERT INTO qpo.job_deps (child_id, parent_id)
        SELECT DISTINCT c, p FROM unnest(children, parents) AS u(c, p)
        ON CONFLICT DO NOTHING;
    PERFORM qpo.resolve_blocked(array(SELECT DISTINCT c FROM unnest(children) AS c));
END;
$$;

CREATE FUNCTION qpo.jobs_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qpo.job_events (job_id, from_state, to_state, attempt, worker, error)
        SELECT id, NULL, state, attempt, lease_owner, last_error FROM new_rows;
    IF EXISTS (SELECT 1 FROM new_rows WHERE state = 'queued') THEN
        PERFORM pg_notify('qpo_jobs', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_after_insert AFTER INSERT ON qpo.jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION qpo.jobs_after_insert();

CREATE FUNCTION qpo.jobs_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    changed boolean;
    finished boolean;
    requeued boolean;
    taken_away boolean;
    children bigint[];
BEGIN
    -- One pass decides what else this statement needs: most statements (heartbeats) need
    -- nothing, claims only their events.
    SELECT coalesce(bool_or(n.state <> o.state), false),
           coalesce(bool_or(n.state <> o.state AND n.state IN ('succeeded', 'dead', 'cancelled')), false),
           coalesce(bool_or(n.state = 'queued' AND o.state <> 'queued'), false),
           coalesce(bool_or(o.state = 'running' AND n.state = 'cancelled'), false)
      INTO changed, finished, requeued, taken_away
      FROM new_rows n JOIN old_rows o ON o.id = n.id;
    IF NOT changed THEN
        RETURN NULL;
    END IF;
    INSERT INTO qpo.job_events (job_id, from_state, to_state, attempt, worker, error)
        SELECT n.id, o.state, n.state, n.attempt, coalesce(n.lease_owner, o.lease_owner),
               CASE WHEN n.state IN ('failed', 'dead', 'cancelled')
                      OR (o.state = 'running' AND n.state = 'queued') THEN n.last_error END
          FROM new_rows n JOIN old_rows o ON o.id = n.id
         WHERE n.state <> o.state;
    -- Only finished parents can change a child.
    IF finished THEN
        children := array(
            SELECT DISTINCT d.child_id
              FROM new_rows n JOIN old_rows o ON o.id = n.id
              JOIN qpo.job_deps d ON d.parent_id = n.id
             WHERE n.state <> o.state AND n.state IN ('succeeded', 'dead', 'cancelled'));
        IF cardinality(children) > 0 THEN
            PERFORM qpo.resolve_blocked(children);
        END IF;
    END IF;
    IF requeued THEN
        PERFORM pg_notify('qpo_jobs', '');
    END IF;
    -- A running job taken away (cancelled): its worker learns at once instead of at its next
    -- heartbeat.
    IF taken_away THEN
        PERFORM pg_notify('qpo_cancel', '');
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_after_update AFTER UPDATE ON qpo.jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION qpo.jobs_after_update();

-- Exponential backoff with "equal jitter": half the capped delay fixed, half random, so
-- retries of jobs that failed together spread out but never come back sooner than half.
CREATE FUNCTION qpo.retry_delay(attempt integer, base_ms double precision, cap_ms double precision)
RETURNS interval LANGUAGE sql VOLATILE AS $$
    SELECT make_interval(secs => least(cap_ms, base_ms * power(2, greatest(attempt, 1) - 1))
                                 * (0.5 + 0.5 * random()) / 1000.0);
$$;

-- Cancels a job that has not finished; its blocked descendants follow through the trigger.
CREATE FUNCTION qpo.cancel_job(job bigint, reason text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    prior text;
BEGIN
    SELECT state INTO prior FROM qpo.jobs WHERE id = job FOR UPDATE;
    IF prior IS NULL THEN
        RAISE EXCEPTION 'job % does not exist', job USING ERRCODE = 'no_data_found';
    END IF;
    IF prior IN ('succeeded', 'dead', 'cancelled') THEN
        RETURN prior;
    END IF;
    UPDATE qpo.jobs
       SET state = 'cancelled', finished_at = now(), lease_owner = NULL,
           lease_expires_at = NULL, last_error = coalesce(reason, 'cancelled')
     WHERE id = job;
    RETURN prior;
END;
$$;

CREATE FUNCTION qpo.kind_attempts(k text) RETURNS integer LANGUAGE sql STABLE AS $$
    SELECT coalesce((SELECT max_attempts FROM qpo.job_kinds WHERE kind = k), 5);
$$;

-- Gives a failed, dead or cancelled job a fresh set of attempts (the kind's default), and
-- puts its cancelled descendants back to blocked. attempt keeps growing (it is the fencing
-- token); max_attempts moves up instead.
CREATE FUNCTION qpo.retry_job(job bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    prior text;
    descendants bigint[];
BEGIN
    SELECT state INTO prior FROM qpo.jobs WHERE id = job FOR UPDATE;
    IF prior IS NULL THEN
        RAISE EXCEPTION 'job % does not exist', job USING ERRCODE = 'no_data_found';
    END IF;
    IF prior NOT IN ('failed', 'dead', 'cancelled') THEN
        RETURN prior;
    END IF;
    descendants := array(
        WITH RECURSIVE d(id) AS (
            SELECT child_id FROM qpo.job_deps WHERE parent_id = job
            UNION
            SELECT dd.child_id FROM qpo.job_deps dd JOIN d ON dd.parent_id = d.id)
        SELECT id FROM d);
    UPDATE qpo.jobs j
       SET state = 'blocked', finished_at = NULL, max_attempts = j.attempt + qpo.kind_attempts(j.kind)
     WHERE j.id = ANY (descendants) AND j.state = 'cancelled';
    UPDATE qpo.jobs j
       SET state = 'queued', finished_at = NULL, run_after = now(),
           max_attempts = j.attempt + qpo.kind_attempts(j.kind)
     WHERE j.id = job;
    -- A descendant may have another parent that is still dead: it is cancelled again.
    PERFORM qpo.resolve_blocked(descendants);
    RETURN prior;
END;
$$;
