-- Least privilege: four NOLOGIN group roles, granted by a deployment to its login roles
-- (docs/roles.md). qpo_admin owns the schema and migrates it; qpo_scheduler submits, plans,
-- imports, cancels and resumes; qpo_worker claims and finishes jobs and appends their results;
-- qpo_reader reads. No role but the owner has UPDATE or DELETE on an audit table, and no role
-- writes qpo.job_events at all: the queue's triggers do, as the owner.
--
-- Roles are cluster-wide and several databases of one cluster may be migrated at once (the
-- tests clone many): CREATE ROLE is guarded by a look-up, and the race between two migrations
-- that both saw no role ends in unique_violation (or duplicate_object) on pg_authid, caught.
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['qpo_admin', 'qpo_scheduler', 'qpo_worker', 'qpo_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN unique_violation OR duplicate_object THEN
                NULL; -- created meanwhile by a migration of another database
            END;
        END IF;
    END LOOP;
    -- A migrator that is not a superuser must belong to qpo_admin to hand it the schema.
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT pg_has_role(current_user, 'qpo_admin', 'MEMBER') THEN
        EXECUTE format('GRANT qpo_admin TO %I', current_user);
    END IF;
END $$;

-- Everything in the schema belongs to qpo_admin, whoever ran the migrations.
DO $$
DECLARE
    o record;
BEGIN
    EXECUTE 'ALTER SCHEMA qpo OWNER TO qpo_admin';
    -- Sequences of serial columns follow their table's owner and cannot be given alone.
    FOR o IN SELECT c.relname, c.relkind FROM pg_class c
              WHERE c.relnamespace = 'qpo'::regnamespace AND c.relkind IN ('r', 'v', 'S', 'm')
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                 WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                                   AND d.deptype IN ('a', 'i'))
    LOOP
        EXECUTE format('ALTER %s qpo.%I OWNER TO qpo_admin',
                       CASE o.relkind WHEN 'v' THEN 'VIEW' WHEN 'S' THEN 'SEQUENCE'
                                      WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
                       o.relname);
    END LOOP;
    FOR o IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
              WHERE p.pronamespace = 'qpo'::regnamespace
    LOOP
        EXECUTE format('ALTER FUNCTION %s OWNER TO qpo_admin', o.sig);
    END LOOP;
END $$;

-- Only the owner (and superusers) create objects in the schema.
REVOKE CREATE ON SCHEMA qpo FROM PUBLIC;
GRANT USAGE ON SCHEMA qpo TO qpo_scheduler, qpo_worker, qpo_reader;

-- Everyone reads everything (the results, the audit trail, the queue).
GRANT SELECT ON ALL TABLES IN SCHEMA qpo TO qpo_scheduler, qpo_worker, qpo_reader;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA qpo TO qpo_scheduler, qpo_worker;

-- The scheduler: experiments in, runs and jobs out, data imports, cancel and resume.
GRANT INSERT, UPDATE ON qpo.experiments, qpo.runs, qpo.targets, qpo.jobs TO qpo_scheduler;
GRANT INSERT ON qpo.job_deps, qpo.d0_records TO qpo_scheduler;
GRANT INSERT, DELETE ON qpo.task_items TO qpo_scheduler; -- DELETE: qpo data import --replace

-- The workers: the lease columns of jobs (claim, heartbeat, complete, fail, reap), and the
-- append-only outputs of their jobs. train_metrics' DELETE drops the steps a resumed train
-- redoes (not an audit table).
GRANT UPDATE ON qpo.jobs TO qpo_worker;
GRANT INSERT ON qpo.llm_calls, qpo.rewards, qpo.eval_scores, qpo.generations, qpo.run_records,
               qpo.checkpoints, qpo.train_metrics, qpo.d0_records TO qpo_worker;
GRANT DELETE ON qpo.train_metrics TO qpo_worker;
-- Checkpoints in PostgreSQL (0060): a train job saves each epoch and prunes older ones.
GRANT INSERT, DELETE ON qpo.checkpoint_epochs, qpo.artifacts TO qpo_worker;

-- The events of a job are written by the queue's triggers, as the owner: nobody else can add,
-- change or remove one. search_path is pinned as SECURITY DEFINER functions must.
ALTER FUNCTION qpo.jobs_after_insert() SECURITY DEFINER SET search_path = qpo, pg_temp;
ALTER FUNCTION qpo.jobs_after_update() SECURITY DEFINER SET search_path = qpo, pg_temp;
REVOKE ALL ON FUNCTION qpo.jobs_after_insert(), qpo.jobs_after_update() FROM PUBLIC;
