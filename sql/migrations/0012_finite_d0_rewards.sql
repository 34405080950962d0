-- A NaN or infinite reward poisons r_norm for every run of its (task, setting, target), and
-- PostgreSQL's double precision takes 'NaN' and 'Infinity' happily. PostgreSQL orders NaN
-- above Infinity, so the strict bounds below refuse NaN, Infinity and -Infinity alike.
ALTER TABLE qpo.d0_records
    ADD CONSTRAINT d0_records_raw_reward_finite
        CHECK (raw_reward > '-Infinity' AND raw_reward < 'Infinity');
