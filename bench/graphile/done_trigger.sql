-- graphile-worker deletes a job when it completes, so nothing in its tables says when the
-- last one did. This records, per completing statement, when its transaction began: the same
-- clock and instant as qpo.jobs.finished_at (now()), so both systems are timed the same way.
CREATE TABLE public.bench_done (at timestamptz NOT NULL);
CREATE FUNCTION public.bench_done_mark() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO public.bench_done SELECT now() WHERE EXISTS (SELECT 1 FROM gone);
    RETURN NULL;
END $$;
CREATE TRIGGER bench_done AFTER DELETE ON graphile_worker._private_jobs
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION public.bench_done_mark();
