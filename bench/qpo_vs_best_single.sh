#!/usr/bin/env bash
# QPO against the best single source prompt and the per-query oracle, on the simulated target
# (qpo sim-llm), for TweetEval zero-shot and few-shot, SVAMP and GSM8K: each case is one
# `qpo demo --config` run (throwaway cluster, D_0 built against the simulator by the d0 job,
# the scheduler and workers as processes), then a table of the last loop's numbers from
# `qpo results --format csv`, with QPO minus the best baseline and its 95% paired bootstrap
# interval. Not run in CI: each case takes minutes.
#   bench/qpo_vs_best_single.sh [--data DIR] [--out DIR] [--cases "tweet_zero tweet_few svamp gsm8k"]
# Knobs (environment): SEEDS (default "0 1 2"), LOOPS (2), TEST (200).
set -euo pipefail
cd "$(dirname "$0")/.."
qpo="$(pwd)/build/qpo"
data="${QPO_DATA_DIR:-$(pwd)/../shared/data}"
out="./qpo-bench-vs-best"
cases="tweet_zero tweet_few svamp gsm8k"
while [ $# -gt 0 ]; do
  case "$1" in
    --data) data=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --cases) cases=$2; shift 2 ;;
    *) echo "usage: bench/qpo_vs_best_single.sh [--data DIR] [--out DIR] [--cases LIST]" >&2; exit 2 ;;
  esac
done
[ -x "$qpo" ] || { echo "bench: build/qpo is missing; run ./qpo.sh build" >&2; exit 2; }
seeds=$(echo "${SEEDS:-0 1 2}" | sed 's/ \+/, /g')
loops=${LOOPS:-2}
test_size=${TEST:-200}
mkdir -p "$out"

# config CASE: the experiment of one case, on the demo's policy and training knobs.
config() {
  local task setting collections
  case "$1" in
    tweet_zero) task=tweet_emotion setting=zero_shot ;;
    tweet_few) task=tweet_emotion setting=few_shot ;;
    svamp) task=svamp setting=zero_shot ;;
    gsm8k) task=gsm8k setting=zero_shot ;;
    *) echo "bench: unknown case $1" >&2; exit 2 ;;
  esac
  cat <<JSON
{
  "name": "bench-$1",
  "description": "bench/qpo_vs_best_single.sh: $task $setting against qpo sim-llm, D_0 built by the d0 job.",
  "tasks": ["$task"], "settings": ["$setting"], "seeds": [$seeds], "loops": $loops,
  "targets": [{"name": "sim", "base_url": "http://127.0.0.1:1/v1", "model": "sim-llama-2-7b-chat", "max_inflight": 8}],
  "policy": {"size": "tiny", "init": "scratch", "tokenizer": "gpt2_bpe"},
  "hyper": {"epochs_first": 8, "epochs_next": 2, "batch_size": 32},
  "collect": {"batches": 2, "batch_size": 100},
  "test": {"size": $test_size, "math_size": $test_size, "shards": 2},
  "d0": {"source": "build", "queries": 100},
  "oracle": true
}
JSON
}

printf '%-11s %8s %11s %8s %8s  %-28s %s\n' case "QPO %" "best 1 %" "oracle %" "prompts" \
  "QPO - best baseline [95%]" "wall s"
for c in $cases; do
  config "$c" >"$out/$c.json"
  start=$SECONDS
  if ! "$qpo" demo --config "$out/$c.json" --out "$out/$c" --data "$data" >"$out/$c.log" 2>&1; then
    printf '%-11s failed: see %s\n' "$c" "$out/$c.log"
    continue
  fi
  # The last loop's QPO row, the best single prompt and the oracle from results.csv.
  awk -F, -v c="$c" -v s=$((SECONDS - start)) '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $col["source"] == "qpo" && $col["loop"] + 0 >= last {
      last = $col["loop"] + 0; q = $col["mean_acc"]; p = $col["distinct_prompts"]
      d = $col["diff"]; lo = $col["ci_low"]; hi = $col["ci_high"]; vs = $col["vs"] }
    $col["source"] == "baseline:best_single" { b = $col["mean_acc"] }
    $col["source"] == "oracle" { o = $col["mean_acc"] }
    END {
      ci = d == "" ? "n/a" : sprintf("%+.1f [%+.1f, %+.1f] vs %s", 100 * d, 100 * lo, 100 * hi, vs)
      printf "%-11s %8.1f %11.1f %8.1f %8s  %-28s %d\n", c, 100 * q, 100 * b, 100 * o, p, ci, s
    }' "$out/$c/results.csv"
done
