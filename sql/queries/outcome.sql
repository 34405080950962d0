-- Named statements of a job's outcome (workers/runtime/outcome.c), run in its completing,
-- fenced transaction.

-- name: outcome_insert_rows
-- $1 table (qpo.<name>), $2 a JSON array of rows keyed by column name, $3 keep rows already
-- there (ON CONFLICT DO NOTHING). Returns the number of rows inserted.
SELECT qpo.insert_json_rows($1::regclass, $2::jsonb, $3::boolean);
