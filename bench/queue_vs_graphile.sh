#!/usr/bin/env bash
# qpo's queue against graphile-worker@0.17.3 on the same throwaway PostgreSQL cluster, same
# job count, worker processes, concurrency and enqueue batch size, both in batched mode.
# Runs them alternately ROUNDS times (the machine may be shared: the best round of each is
# compared) and prints both JSON lines and the ratios. Wall-clock throughput swings with
# whatever else the machine runs, so each run's CPU seconds are measured too (the workers and
# the benchmark driver via /usr/bin/time, the server via the postmaster's reaped children):
# jobs per CPU second is the figure that a busy machine disturbs least.
#   bench/queue_vs_graphile.sh [--jobs N] [--workers W] [--concurrency C] [--batch B] [--rounds R]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=20000 workers=4 concurrency=16 batch=1000 rounds=2 latency=200
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --latency-jobs) latency=$2; shift 2 ;;
    *) sed -n '2,7p' "$0"; exit 2 ;;
  esac
done
qpo=${QPO_BINARY:-build/qpo}
[ -x "$qpo" ] || { echo "queue_vs_graphile: $qpo not built (./qpo.sh build)" >&2; exit 2; }
[ -d bench/graphile/node_modules ] || (cd bench/graphile && npm ci --silent --no-audit --no-fund)

tmp=$(mktemp -d)
trap 'scripts/pg-throwaway.sh stop "$tmp/pg"; rm -rf "$tmp"' EXIT
eval "$(scripts/pg-throwaway.sh start "$tmp/pg")"
admin=$DATABASE_URL
url_of() { echo "$admin" | sed "s|:///postgres?|:///$1?|"; }

common=(--jobs "$jobs" --workers "$workers" --concurrency "$concurrency" --batch "$batch"
        --latency-jobs "$latency")
postmaster=$(head -n1 "$tmp/pg/postmaster.pid")
tick=$(getconf CLK_TCK)
server_cpu() { awk -v t="$tick" '{printf "%.2f", ($14 + $15 + $16 + $17) / t}' "/proc/$postmaster/stat"; }
# run NAME CMD...: appends CMD's JSON line, with cpu_s (client + server) added, to NAME.jsonl.
run() {
  local name=$1; shift
  local before; before=$(server_cpu)
  /usr/bin/time -f "%U %S" -o "$tmp/time" "$@" >"$tmp/line"
  sleep 0.2 # the server reaps the benchmark's backends
  local cpu; cpu=$(awk -v b="$before" -v a="$(server_cpu)" '{printf "%.2f", $1 + $2 + a - b}' "$tmp/time")
  sed "s/}\$/,\"cpu_s\":$cpu}/" "$tmp/line" >>"$tmp/$name.jsonl"
}
for r in $(seq 1 "$rounds"); do
  psql -q "$admin" -c "CREATE DATABASE qpo_$r" -c "CREATE DATABASE graphile_$r"
  run qpo "$qpo" bench queue "${common[@]}" --json --db "$(url_of "qpo_$r")"
  run gw env DATABASE_URL="$(url_of "graphile_$r")" node bench/graphile/bench.js "${common[@]}"
done
cat "$tmp/qpo.jsonl" "$tmp/gw.jsonl"
node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").map(JSON.parse);
const q = read(process.argv[1]), g = read(process.argv[2]);
const best = (rows, k, hi) => rows.map((r) => r[k]).sort((a, b) => hi ? b - a : a - b)[0];
const perCpu = (r) => (r.jobs + r.latency_jobs) / r.cpu_s; /* every job enqueued and worked */
const qt = best(q, "jobs_per_s", true), gt = best(g, "jobs_per_s", true);
const ql = best(q, "p50_ms", false), gl = best(g, "p50_ms", false);
const qc = Math.max(...q.map(perCpu)), gc = Math.max(...g.map(perCpu));
console.log(JSON.stringify({
  qpo_jobs_per_s: qt, graphile_jobs_per_s: gt, throughput_ratio: +(qt / gt).toFixed(2),
  qpo_jobs_per_cpu_s: Math.round(qc), graphile_jobs_per_cpu_s: Math.round(gc),
  cpu_efficiency_ratio: +(qc / gc).toFixed(2),
  qpo_p50_ms: ql, graphile_p50_ms: gl, target: "ratio >= 1.2 (job_events on), qpo p50 < 5 ms",
}));' "$tmp/qpo.jsonl" "$tmp/gw.jsonl"
