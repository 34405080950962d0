#!/usr/bin/env bash
# qpo's queue against graphile-worker@0.17.3 on one throwaway PostgreSQL cluster, same noop
# jobs, same enqueue batches, job_events on. Each round runs, each in a fresh database:
#   qpo      in its best shape (--workers/--concurrency/--prefetch),
#   gw-best  graphile-worker as its users run it for throughput: one process, concurrency
#            --gw-concurrency (10), localQueue --gw-local-queue (200),
#   gw-same  graphile-worker in qpo's shape (its localQueue = qpo's prefetch).
# Both are timed the same way, on the server's clock: from just before the worker processes
# start to the beginning of the transaction that completed the last job (qpo: finished_at;
# graphile: bench/graphile/done_trigger.sql); steady_jobs_per_s leaves out start-up (from the
# first completion to the last). Latency: p50/p99 enqueue-to-start of jobs
# enqueued one at a time on the idle queue. The machine may be shared: every round is
# printed, with the spread; the ratios use the median round of each. CPU seconds (workers,
# driver, server backends) are printed too: a busy machine disturbs them least.
#   bench/queue_vs_graphile.sh [--jobs N] [--workers W] [--concurrency C] [--prefetch P]
#       [--gw-concurrency C] [--gw-local-queue L] [--batch B] [--rounds R] [--latency-jobs M]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=20000 workers=2 concurrency=8 prefetch=500 gwc=10 gwl=200 batch=1000 rounds=3 latency=200
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    --concurrency) concurrency=$2; shift 2 ;;
    --prefetch) prefetch=$2; shift 2 ;;
    --gw-concurrency) gwc=$2; shift 2 ;;
    --gw-local-queue) gwl=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --latency-jobs) latency=$2; shift 2 ;;
    *) sed -n '2,15p' "$0"; exit 2 ;;
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

common=(--jobs "$jobs" --batch "$batch" --latency-jobs "$latency")
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
  cat "$tmp/line" >&2
}
for r in $(seq 1 "$rounds"); do
  for db in qpo gwbest gwsame; do psql -q "$admin" -c "CREATE DATABASE ${db}_$r"; done
  run qpo "$qpo" bench queue "${common[@]}" --workers "$workers" --concurrency "$concurrency" \
    --prefetch "$prefetch" --json --db "$(url_of "qpo_$r")"
  run gwbest env DATABASE_URL="$(url_of "gwbest_$r")" node bench/graphile/bench.js "${common[@]}" \
    --workers 1 --concurrency "$gwc" --local-queue "$gwl"
  run gwsame env DATABASE_URL="$(url_of "gwsame_$r")" node bench/graphile/bench.js "${common[@]}" \
    --workers "$workers" --concurrency "$concurrency" --local-queue "$((prefetch > 0 ? prefetch : 1))"
done
node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").map(JSON.parse);
const [q, gb, gs] = process.argv.slice(1).map(read);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor((s.length - 1) / 2)]; };
const col = (rows, k) => rows.map((r) => r[k]);
const perCpu = (r) => Math.round((r.jobs + r.latency_jobs) / r.cpu_s); /* every job worked */
const sum = (rows) => ({
  jobs_per_s: med(col(rows, "jobs_per_s")), spread: [Math.min(...col(rows, "jobs_per_s")),
  Math.max(...col(rows, "jobs_per_s"))], steady_jobs_per_s: med(col(rows, "steady_jobs_per_s")),
  jobs_per_cpu_s: med(rows.map(perCpu)),
  p50_ms: med(col(rows, "p50_ms")), p99_ms: med(col(rows, "p99_ms")),
  shape: `${rows[0].workers}x${rows[0].concurrency}, local queue ${rows[0].prefetch ?? rows[0].local_queue}`,
});
const Q = sum(q), B = sum(gb), S = sum(gs);
console.log(JSON.stringify({ qpo: Q, graphile_best: B, graphile_same_shape: S }));
console.log(JSON.stringify({
  best_vs_best: +(Q.jobs_per_s / B.jobs_per_s).toFixed(2),
  same_vs_same: +(Q.jobs_per_s / S.jobs_per_s).toFixed(2),
  steady_best_vs_best: +(Q.steady_jobs_per_s / B.steady_jobs_per_s).toFixed(2),
  cpu_best_vs_best: +(Q.jobs_per_cpu_s / B.jobs_per_cpu_s).toFixed(2),
  qpo_p50_ms: Q.p50_ms, graphile_best_p50_ms: B.p50_ms,
  target: "best_vs_best >= 1.2 (job_events on), qpo p50 < 5 ms",
}));' "$tmp/qpo.jsonl" "$tmp/gwbest.jsonl" "$tmp/gwsame.jsonl"
