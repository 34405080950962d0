#!/usr/bin/env bash
# Memory over 10,000 jobs: does a long-lived qpo process hold steady?
#   worker     one `qpo worker --class cpu --kinds noop` drains 10,000 noop jobs, then another
#              10,000: its RSS after start-up, after the first 1,000 jobs, after 10,000 and
#              after 20,000, and its peak (VmHWM).
#   scheduler  `qpo scheduler` plans an experiment of over 10,000 jobs, then keeps passing over
#              it (--poll-ms 20) for SECONDS: its RSS after start-up, after planning, and at
#              the end.
# Each on a throwaway PostgreSQL cluster. Prints one line per sample; a leak shows as growth
# between the later samples (start-up and the first jobs fill caches and pools once).
#   bench/rss_10k_jobs.sh [--jobs N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=10000 seconds=60
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done
qpo=${QPO_BINARY:-build/qpo}
[ -x "$qpo" ] || { echo "rss_10k_jobs: $qpo not built (./qpo.sh build)" >&2; exit 2; }

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  scripts/pg-throwaway.sh stop "$tmp/pg"
  rm -rf "$tmp"
}
trap cleanup EXIT
eval "$(scripts/pg-throwaway.sh start "$tmp/pg")"
"$qpo" db migrate >/dev/null

rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
sql() { psql "$DATABASE_URL" -qAtX -c "$1"; }
enqueue() { sql "INSERT INTO qpo.jobs (kind, payload) SELECT 'noop', '{}' FROM generate_series(1, $1)"; }
wait_done() {
  while [ "$(sql "SELECT count(*) FROM qpo.jobs WHERE kind = 'noop' AND state = 'succeeded'")" -lt "$1" ]; do
    sleep 0.2
  done
}

# --- worker ---
# Each process is sampled once connected, before its work arrives: a fixed sleep sampled a
# process still loading on a busy machine (5.6 MB instead of 14.7 MB at load 12).
connected() {
  until [ "$(sql "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '$1%'")" -gt 0 ]; do
    kill -0 "$2" 2>/dev/null || { echo "rss_10k_jobs: $1 exited:" >&2; cat "$tmp"/*.log >&2; exit 1; }
    sleep 0.1
  done
  sleep 0.5
}
"$qpo" worker --class cpu --kinds noop --name rss --concurrency 4 --poll 0.2 2>"$tmp/worker.log" &
w=$!; pids+=("$w")
connected "qpo worker rss" "$w"
echo "worker    after start-up          RSS $(rss "$w") kB"
enqueue "$jobs"
wait_done 1000
echo "worker    after 1,000 jobs        RSS $(rss "$w") kB"
wait_done "$jobs"
echo "worker    after $jobs jobs       RSS $(rss "$w") kB"
enqueue "$jobs"
wait_done $((2 * jobs))
echo "worker    after $((2 * jobs)) jobs       RSS $(rss "$w") kB (peak $(hwm "$w") kB)"
kill "$w"; wait "$w" || true

# --- scheduler: enough seeds for over 10,000 jobs ---
seeds=$(seq -s, 0 159)
cat >"$tmp/exp.json" <<EOF
{"name": "rss", "tasks": ["tweet_emotion"], "settings": ["zero_shot"], "seeds": [$seeds], "loops": 4,
 "targets": [{"name": "sim", "base_url": "http://127.0.0.1:9/v1", "model": "qpo-sim"}],
 "policy": {"size": "tiny", "init": "scratch", "tokenizer": "bytes"}, "d0": {"source": "import"}}
EOF
"$qpo" scheduler --poll-ms 20 2>"$tmp/scheduler.log" &
s=$!; pids+=("$s")
connected "qpo scheduler" "$s"
echo "scheduler after start-up          RSS $(rss "$s") kB"
"$qpo" submit "$tmp/exp.json" >/dev/null
while [ "$(sql "SELECT count(*) FROM qpo.experiments WHERE state IN ('planned', 'running', 'failed')")" -lt 1 ]; do
  sleep 0.2
done
planned=$(sql "SELECT count(*) FROM qpo.jobs WHERE kind <> 'noop'")
echo "scheduler after planning $planned jobs RSS $(rss "$s") kB"
sleep "$seconds"
echo "scheduler after $seconds s more passes RSS $(rss "$s") kB (peak $(hwm "$s") kB)"
kill "$s"; wait "$s" || true
