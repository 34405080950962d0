-- Rewards train the next loop's policy and feed every result: a non-finite one is refused
-- where it would be stored. PostgreSQL orders NaN above Infinity, so the strict bounds refuse
-- NaN, Infinity and -Infinity alike (0012 does the same for qpo.d0_records).
ALTER TABLE qpo.rewards
    ADD CONSTRAINT rewards_raw_reward_finite
        CHECK (raw_reward > '-Infinity' AND raw_reward < 'Infinity'),
    ADD CONSTRAINT rewards_norm_reward_finite
        CHECK (norm_reward > '-Infinity' AND norm_reward < 'Infinity'),
    ADD CONSTRAINT rewards_d0_range_finite
        CHECK (d0_min_raw > '-Infinity' AND d0_max_raw < 'Infinity'
               AND d0_min_raw < 'Infinity' AND d0_max_raw > '-Infinity');
