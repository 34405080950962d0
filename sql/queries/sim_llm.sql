-- Named statements of the simulated target LLM (workers/sim_llm).

-- name: sim_llm_task_items
-- Every item's gold answer, loaded once at start so no request touches the database.
SELECT task, fields::text, label, answer FROM qpo.task_items ORDER BY task, item_id;
