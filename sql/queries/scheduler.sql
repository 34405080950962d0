-- Named statements of the scheduler: experiments, planning, data import, status, results.

-- name: import_stage_create
CREATE TEMP TABLE import_stage (LIKE qpo.task_items) ON COMMIT DROP;

-- name: import_stage_rows
INSERT INTO import_stage SELECT * FROM jsonb_populate_recordset(NULL::qpo.task_items, $1::jsonb);

-- name: import_changed_rows
SELECT count(*), min(s.upstream_split), min(s.upstream_index)
FROM import_stage s
JOIN qpo.task_items t USING (task, upstream_split, upstream_index)
WHERE (t.item_id, t.split, t.query, t.fields, t.label, t.answer)
      IS DISTINCT FROM (s.item_id, s.split, s.query, s.fields, s.label, s.answer);

-- name: import_insert_items
INSERT INTO qpo.task_items SELECT * FROM import_stage ON CONFLICT DO NOTHING;

-- name: import_split_counts
SELECT split, count(*) FROM qpo.task_items WHERE task = $1 GROUP BY split ORDER BY split;

-- name: d0_stage_create
CREATE TEMP TABLE d0_stage ON COMMIT DROP AS
SELECT task, setting, target, source, prompt_method, query, label, answer, prompt, acc, avg_acc,
       raw_reward, extra
FROM qpo.d0_records WITH NO DATA;

-- name: d0_stage_rows
INSERT INTO d0_stage
SELECT task, setting, target, source, coalesce(prompt_method, ''), query, label, answer, prompt,
       acc, avg_acc, raw_reward, coalesce(extra, '{}')
FROM jsonb_populate_recordset(NULL::qpo.d0_records, $1::jsonb);

-- name: d0_insert
INSERT INTO qpo.d0_records (task, setting, target, source, prompt_method, query, label, answer,
                            prompt, acc, avg_acc, raw_reward, extra)
SELECT task, setting, target, source, prompt_method, query, label, answer, prompt, acc, avg_acc,
       raw_reward, extra
FROM d0_stage
ON CONFLICT (task, setting, target, query, prompt) DO NOTHING;
