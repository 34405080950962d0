-- A job's output rows are written by the worker runtime in the job's completing transaction
-- (workers/runtime/outcome.c). The table defines the row: the columns are the keys of the
-- JSON rows, checked against the table's catalogue, and jsonb_populate_recordset gives each
-- value its column's type (JSON arrays become PostgreSQL arrays). Columns the rows do not name
-- keep their defaults (ids, created_at). Rows of one call name the same keys.
CREATE FUNCTION qpo.insert_json_rows(target regclass, rows jsonb,
                                     skip_conflicts boolean DEFAULT false) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    cols text;
    unknown text;
    n bigint;
BEGIN
    IF rows IS NULL OR jsonb_typeof(rows) <> 'array' THEN
        RAISE EXCEPTION 'rows for % must be a JSON array of objects', target
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_array_length(rows) = 0 THEN
        RETURN 0;
    END IF;
    SELECT string_agg(quote_ident(k.key), ', ' ORDER BY k.key),
           string_agg(k.key, ', ' ORDER BY k.key)
               FILTER (WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                                          WHERE a.attrelid = target AND a.attname = k.key
                                            AND a.attnum > 0 AND NOT a.attisdropped))
      INTO cols, unknown
      FROM (SELECT DISTINCT jsonb_object_keys(r) AS key FROM jsonb_array_elements(rows) r) k;
    IF unknown IS NOT NULL THEN
        RAISE EXCEPTION 'rows for % name columns it does not have: %', target, unknown
            USING ERRCODE = 'undefined_column',
                  HINT = 'the handler''s row keys must be the table''s column names';
    END IF;
    EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_recordset(NULL::%s, $1)%s',
                   target, cols, cols, target,
                   CASE WHEN skip_conflicts THEN ' ON CONFLICT DO NOTHING' ELSE '' END)
      USING rows;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END $$;
