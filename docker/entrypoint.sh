#!/bin/sh
# The images' entrypoint: `qpo-entrypoint ARGS...` runs `qpo ARGS...` after what a container
# needs and a developer's shell does not (and `qpo worker` gets --name HOSTNAME when it has none):
#  - secrets given as files (Docker secrets, Kubernetes volumes): for each NAME in
#    QPO_SECRET_VARS whose NAME_FILE is set and NAME is not, NAME is read from that file, so a
#    password or key never has to sit in the image or the compose file;
#  - the data folder: QPO_FETCH="tweet_emotion gpt2-bpe ..." fetches those data sets into the
#    cache volume first (qpo data fetch, checksummed, a no-op when present), and the workers'
#    tokenizer and prompt folders default to the data folder's (QPO_DATA_DIR, else the cache);
#  - the database login: QPO_DB_ROLE=scheduler|worker|reader logs the process in as that
#    component's login role (docs/roles.md; docker/postgres-init makes them) with its password
#    from QPO_<ROLE>_PASSWORD; without it, PGUSER (the schema owner, for `qpo db migrate`);
#  - `health`: the image's HEALTHCHECK. With a database configured, the database answers and
#    the schema is readable (qpo db status); otherwise the binary runs.
set -eu

secret_vars="PGPASSWORD QPO_SCHEDULER_PASSWORD QPO_WORKER_PASSWORD QPO_READER_PASSWORD"
for name in ${QPO_SECRET_VARS:-$secret_vars QPO_TARGET_API_KEY HF_TOKEN}; do
    eval "file=\${${name}_FILE:-}" "value=\${${name}:-}"
    if [ -n "$file" ] && [ -z "$value" ]; then
        if [ ! -r "$file" ]; then
            echo "qpo-entrypoint: ${name}_FILE=$file cannot be read" >&2
            exit 2
        fi
        value=$(head -n 1 "$file")
        export "$name=$value"
    fi
done

case "${QPO_DB_ROLE:-}" in
    "") ;;
    scheduler) export PGUSER=qpo_sched PGPASSWORD="${QPO_SCHEDULER_PASSWORD:-}" ;;
    reader) export PGUSER=qpo_read PGPASSWORD="${QPO_READER_PASSWORD:-}" ;;
    # Acting as the group role makes the checkpoints' large objects the group's, so a trainer
    # on another host can read and prune them (docs/roles.md).
    worker) export PGUSER=qpo_work PGPASSWORD="${QPO_WORKER_PASSWORD:-}" \
        PGOPTIONS="-c role=qpo_worker" ;;
    *)
        echo "qpo-entrypoint: QPO_DB_ROLE=$QPO_DB_ROLE is not scheduler, worker or reader" >&2
        exit 2
        ;;
esac

data_dir=${QPO_DATA_DIR:-${QPO_CACHE_DIR:-/var/cache/qpo}}
export QPO_BPE_DIR="${QPO_BPE_DIR:-$data_dir/gpt2_bpe}"
export QPO_PROMPTS_DIR="${QPO_PROMPTS_DIR:-$data_dir/prompts}"

if [ "${1:-}" = health ]; then
    if [ -n "${DATABASE_URL:-}${PGHOST:-}" ]; then
        exec qpo db status >/dev/null
    fi
    exec qpo --version >/dev/null
fi

# Replicas of one service share a command line and run as PID 1, so a worker without --name
# would take the same lease owner name in every container; its hostname is unique.
if [ "${1:-}" = worker ]; then
    case " $* " in
        *" --name "* | *" --name="*) ;;
        *) set -- "$@" --name "${QPO_WORKER_NAME:-$(cat /proc/sys/kernel/hostname)}" ;;
    esac
fi

if [ -n "${QPO_FETCH:-}" ]; then
    # Word splitting is wanted: QPO_FETCH is a list of data set names.
    # shellcheck disable=SC2086
    qpo data fetch $QPO_FETCH ${QPO_FETCH_FROM:+--from "$QPO_FETCH_FROM"}
fi

exec qpo "$@"
