-- qpo.job_events rows reference a real job. 0002 left the key out to save a lookup per event;
-- an audit trail whose rows may name no job cannot be trusted, and the lookup is one probe of
-- the jobs primary key. NOT VALID then VALIDATE: existing databases are checked without
-- holding an exclusive lock for the scan.
ALTER TABLE qpo.job_events ADD CONSTRAINT job_events_job_id_fkey
    FOREIGN KEY (job_id) REFERENCES qpo.jobs (id) NOT VALID;
ALTER TABLE qpo.job_events VALIDATE CONSTRAINT job_events_job_id_fkey;
