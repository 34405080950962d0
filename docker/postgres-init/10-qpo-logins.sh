#!/bin/sh
# Runs once, when the postgres service initialises its volume: one login role per qpo
# component (docs/roles.md), each a member of the group role that holds exactly its grants.
# The group roles are made here NOLOGIN, as migration 0070 makes them (it finds them and goes
# on), so that the logins can join them before the schema exists. Passwords come from the env
# file; a component whose password is empty gets no login.
set -eu

login() { # LOGIN GROUP PASSWORD
    [ -n "$3" ] || { echo "10-qpo-logins: no password for $1: not created" >&2; return 0; }
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d "$POSTGRES_DB" \
        -v login="$1" -v grp="$2" -v pw="$3" <<'SQL'
SELECT format('CREATE ROLE %I NOLOGIN', :'grp')
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = :'grp') \gexec
SELECT format('CREATE ROLE %I LOGIN PASSWORD %L IN ROLE %I', :'login', :'pw', :'grp') \gexec
SQL
}

login qpo_sched qpo_scheduler "${QPO_SCHEDULER_PASSWORD:-}"
login qpo_work qpo_worker "${QPO_WORKER_PASSWORD:-}"
login qpo_read qpo_reader "${QPO_READER_PASSWORD:-}"
