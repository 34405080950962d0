#!/usr/bin/env bash
# The main job on embedded defaults: a whole QPO experiment (config/experiments/demo.json:
# TweetEval few-shot, one seed, two loops, a tiny policy on the CPU) on a throwaway PostgreSQL
# cluster against the simulated target LLM, with the scheduler, a cpu worker and a gpu worker
# as separate processes, exactly as on a real deployment. Prints the results table.
#   scripts/demo.sh [--data DIR] [--config FILE] [--keep]
# DIR is the shared data folder (default ../shared/data): TweetEval, the released D_0, the
# GPT-2 BPE files. --keep leaves the cluster running and prints how to reach it.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
qpo="$root/build/qpo"
data="${QPO_DATA_DIR:-$root/../shared/data}"
config="$root/config/experiments/demo.json"
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "usage: scripts/demo.sh [--data DIR] [--config FILE] [--keep]" >&2; exit 2 ;;
  esac
done
for need in tweet_eval_emotion/train_text.txt gpt2_bpe/encoder.json \
            qpo_d0/tweet_emotion_llama7b_ocml_round1_few_shot_expert.json; do
  if [ ! -f "$data/$need" ]; then
    echo "demo: error: $data/$need is missing" >&2
    echo "  hint: pass --data DIR with the shared data folder (TweetEval, the QPO D_0, GPT-2 BPE)" >&2
    exit 2
  fi
done

work=$(mktemp -d /tmp/qpo-demo-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $keep -eq 0 ]; then scripts/pg-throwaway.sh stop "$work/pg"; rm -rf "$work"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

step "throwaway PostgreSQL cluster in $work/pg"
eval "$(scripts/pg-throwaway.sh start "$work/pg")"
"$qpo" db migrate | tail -n 1

step "data: TweetEval emotion and the authors' released D_0"
"$qpo" data import tweet_emotion "$data"/tweet_eval_emotion/{train,val,test}_text.txt
"$qpo" data import-d0 "$data/qpo_d0/tweet_emotion_llama7b_ocml_round1_few_shot_expert.json" \
  --task tweet_emotion --setting few_shot --target sim

step "simulated target LLM (docs/sim-llm.md)"
# The simulator answers only for the model the config names, as a real server would.
model=$(sed -n 's/.*"model": *"\([^"]*\)".*/\1/p' "$config" | head -n 1)
"$qpo" sim-llm --listen 127.0.0.1:0 --db "$DATABASE_URL" --model "${model:-qpo-sim}" >"$work/sim.addr" 2>"$work/sim.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/sim.addr" ] && break; sleep 0.1; done
base=$(head -n 1 "$work/sim.addr")
[ -n "$base" ] || { echo "demo: sim-llm did not start; see $work/sim.log" >&2; exit 1; }
echo "listening at $base"

step "submit $(basename "$config")"
sed "s#http://127.0.0.1:[0-9]*/v1#${base%/}/v1#" "$config" >"$work/experiment.json"
exp=$("$qpo" submit "$work/experiment.json")
echo "experiment $exp"

step "scheduler, a cpu worker and a gpu worker (CPU backend)"
export QPO_BPE_DIR="$data/gpt2_bpe" QPO_CHECKPOINT_DIR="$work/checkpoints" OMP_WAIT_POLICY=passive
"$qpo" scheduler >"$work/scheduler.log" 2>&1 &
pids+=($!)
"$qpo" worker --class cpu --name cpu-1 --concurrency 4 >"$work/worker-cpu.log" 2>&1 &
pids+=($!)
"$qpo" worker --class gpu --name gpu-1 --concurrency 1 >"$work/worker-gpu.log" 2>&1 &
pids+=($!)

deadline=$((SECONDS + ${QPO_DEMO_TIMEOUT:-900}))
while :; do
  state=$(psql -Atqc "SELECT state FROM qpo.experiments WHERE id = $exp" "$DATABASE_URL")
  case "$state" in done | failed | invalid | cancelled) break ;; esac
  if [ $SECONDS -ge $deadline ]; then echo "demo: timed out; logs in $work" >&2; keep=1; exit 1; fi
  sleep 2
done
"$qpo" status "$exp"

step "results (accuracy on the test sample; loop 0 = baseline prompts)"
"$qpo" results "$exp"
psql -Atqc "SELECT 'LLM calls: ' || count(*) || ', cache hits: ' || count(*) FILTER (WHERE cache_hit) FROM qpo.llm_calls" "$DATABASE_URL"
if [ $keep -eq 1 ]; then
  echo; echo "cluster kept: export DATABASE_URL='$DATABASE_URL'; logs and checkpoints in $work"
fi
[ "$state" = done ]
