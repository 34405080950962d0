-- Named statements used by common/ (see common/sqlstore.c for the format).

-- name: schema_version
SELECT max(name) FROM qpo.schema_migrations;
