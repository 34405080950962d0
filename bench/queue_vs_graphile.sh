#!/usr/bin/env bash
# qpo's queue against graphile-worker@0.17.3 on the same throwaway PostgreSQL cluster, same
# job count, worker processes, concurrency and enqueue batch size, both in batched mode.
# Runs them alternately ROUNDS times (the machine may be shared: the best round of each is
# compared) and prints both JSON lines and the ratios.
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
for r in $(seq 1 "$rounds"); do
  psql -q "$admin" -c "CREATE DATABASE qpo_$r" -c "CREATE DATABASE graphile_$r"
  "$qpo" bench queue "${common[@]}" --json --db "$(url_of "qpo_$r")" >>"$tmp/qpo.jsonl"
  DATABASE_URL=$(url_of "graphile_$r") node bench/graphile/bench.js "${common[@]}" >>"$tmp/gw.jsonl"
done
cat "$tmp/qpo.jsonl" "$tmp/gw.jsonl"
node -e '
const fs = require("fs");
const read = (f) => fs.readFileSync(f, "utf8").trim().split("\n").map(JSON.parse);
const q = read(process.argv[1]), g = read(process.argv[2]);
const best = (rows, k, hi) => rows.map((r) => r[k]).sort((a, b) => hi ? b - a : a - b)[0];
const qt = best(q, "jobs_per_s", true), gt = best(g, "jobs_per_s", true);
const ql = best(q, "p50_ms", false), gl = best(g, "p50_ms", false);
console.log(JSON.stringify({
  qpo_jobs_per_s: qt, graphile_jobs_per_s: gt, throughput_ratio: +(qt / gt).toFixed(2),
  qpo_p50_ms: ql, graphile_p50_ms: gl, target: "ratio >= 1.2 (job_events on), qpo p50 < 5 ms",
}));' "$tmp/qpo.jsonl" "$tmp/gw.jsonl"
