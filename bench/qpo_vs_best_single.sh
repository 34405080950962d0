#!/usr/bin/env bash
# QPO against the best single source prompt, policy_mode and the per-query oracle on the
# simulated target (qpo sim-llm): TweetEval emotion zero-shot and few-shot, SVAMP and GSM8K
# (zero-shot). Each case is one `qpo demo --config bench/configs/CASE.json` run (a throwaway
# cluster, data imported from the data folder, D_0 built against the simulator by the d0 job,
# the scheduler and workers as processes); the table is read from the run's `qpo results
# --format json` (results.json): the last loop's QPO (mean +- sd over seeds), the baselines,
# the oracle, and QPO minus the best single prompt paired over the same test items with its
# 95% bootstrap interval, as `qpo results` computes it (vs_baselines).
#
# Size: each full case is the demo's experiment (3 seeds, 2 loops, 200 test items): TweetEval
# zero-shot takes 4.3 minutes on a quiet 2-core machine, SVAMP less; few-shot is about 20
# times the work (20 target calls per scored pair): unfinished after 36 minutes on a 2-core VM
# at load 15. --quick (1 seed, 60 test items) is a smoke run: 1-3 minutes per zero-shot case
# there, 7-12 minutes for few-shot.
# Measured figures: bench/README.md. Not run in CI.
#
#   bench/qpo_vs_best_single.sh [--quick] [--data DIR] [--out DIR] [--cases "CASE..."]
#   bench/qpo_vs_best_single.sh --table-only [--out DIR] [--cases "CASE..."]
#   cases: tweet_zero tweet_few svamp gsm8k (default: all four, in that order)
# The table (markdown) goes to stdout, progress to stderr; --table-only prints the table of an
# earlier run's OUT again. Exit 2 on bad usage, 1 when a case that could run has no result.
# GSM8K is skipped, with the reason in its row, while qpo imports no GSM8K test split.
# QPO_BIN names the qpo binary (default build/qpo). Needs jq.
set -euo pipefail

CASES="tweet_zero tweet_few svamp gsm8k"
QUICK_TEST=60

usage() {
  echo "usage: bench/qpo_vs_best_single.sh [--quick] [--table-only] [--data DIR] [--out DIR] [--cases \"CASE...\"]" >&2
  echo "  cases: $CASES (configs in bench/configs/)" >&2
  exit 2
}

need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then
    echo "bench: $1 needs a value" >&2
    usage
  fi
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --quick) quick=true; shift ;;
      --table-only) table_only=true; shift ;;
      --data) need_value "$@"; data=$2; shift 2 ;;
      --out) need_value "$@"; out=$2; shift 2 ;;
      --cases) need_value "$@"; cases=$2; shift 2 ;;
      -h|--help) usage ;;
      *) echo "bench: unknown argument '$1'" >&2; usage ;;
    esac
  done
}

check_inputs() {
  local c
  for c in $cases; do
    if [ ! -f "$src/bench/configs/$c.json" ]; then
      echo "bench: unknown case '$c': no bench/configs/$c.json (known: $CASES)" >&2
      exit 2
    fi
  done
  command -v jq >/dev/null || { echo "bench: jq is missing (scripts/install-deps.sh test)" >&2; exit 2; }
  $table_only && return 0
  [ -x "$qpo" ] || { echo "bench: $qpo is missing; build it first (./qpo.sh build)" >&2; exit 2; }
  [ -d "$data" ] || { echo "bench: data folder $data is missing (--data DIR)" >&2; exit 2; }
}

# skip_reason CASE: why the case cannot run from the data folder, or nothing. GSM8K's test
# problems are upstream's test.jsonl; while the manifest imports only train.jsonl the task has
# no test split, and the demo would fail a minute in with "task gsm8k has no test items".
skip_reason() {
  [ "$1" = gsm8k ] || return 0
  jq -e '.datasets[] | select(.name == "gsm8k") | .import | any(test("test"))' \
    "$src/config/data-manifest.json" >/dev/null && return 0
  echo "skipped: no GSM8K test split (config/data-manifest.json imports gsm8k/train.jsonl only)"
}

# config CASE: the case's experiment; --quick keeps its first seed and 60 test items.
config() {
  local file="$src/bench/configs/$1.json"
  if $quick; then
    jq --argjson n "$QUICK_TEST" '.seeds = .seeds[:1]
      | .test = (.test + (if .test.math_size then {math_size: $n} else {size: $n} end))
      | .description = "--quick: first seed, \($n) test items. " + .description' "$file"
  else
    cat "$file"
  fi
}

# row CONFIG RESULTS WALL: one markdown row from results.json; the reward column names the
# config's reward weighting ("authors" when the config has no reward section).
row() {
  jq -r --arg wall "$3" --slurpfile cfg "$1" '
    def tenths: (. * 1000 | round) as $t | (if $t < 0 then -$t else $t end) as $a
      | (if $t < 0 then "-" elif $t > 0 then "+" else "" end) + "\($a / 10 | floor).\($a % 10)";
    def pct: if . == null then "n/a" else tenths | ltrimstr("+") end;
    def spct: if . == null then "n/a" else tenths end;
    def acc: if . == null then "n/a" else (.mean_acc | pct) + " +- " + (.std_acc | pct) end;
    def reward: ($cfg[0].reward // {}) as $r
      | if ($r | length) == 0 then "authors" else ($r | tojson) end;
    [.rows[] | select(.source == "qpo")] as $q
    | ($q | map(.loop) | max) as $last
    | ($q[] | select(.loop == $last)) as $qpo
    | ([.rows[] | select(.source == "baseline:best_single")][0]) as $best
    | ([.rows[] | select(.source == "baseline:policy_mode" and .loop == $last)][0]) as $mode
    | ([.rows[] | select(.source == "oracle")][0]) as $oracle
    | ([$qpo.vs_baselines[]? | select(.baseline == "baseline:best_single")][0]) as $d
    | [$qpo.task, $qpo.setting, ($qpo.seeds | tostring),
       (if $qpo.items_min == $qpo.items_max then ($qpo.items_min | tostring)
        else "\($qpo.items_min)-\($qpo.items_max)" end),
       ($last | tostring), ($qpo | acc), ($best | acc), ($mode | acc), ($oracle.mean_acc | pct),
       ($qpo.distinct_prompts | if . == null then "n/a" else (. * 100 | round / 100 | tostring) end),
       (if $d == null then "n/a"
        else ($d.diff | spct) + " [" + ($d.ci_low | spct) + ", " + ($d.ci_high | spct) + "]" end),
       reward, $wall]
    | "| " + join(" | ") + " |"' "$2"
}

# run CASE: one qpo demo; its wall seconds into OUT/CASE.wall, its results in OUT/CASE/.
run() {
  local cfg="$out/$1.json" start=$SECONDS
  config "$1" >"$cfg"
  rm -f "$out/$1/results.json" "$out/$1.wall"
  echo "bench: $1: qpo demo --config $cfg (log $out/$1.log)" >&2
  if "$qpo" demo --config "$cfg" --out "$out/$1" --data "$data" >"$out/$1.log" 2>&1; then
    echo $((SECONDS - start)) >"$out/$1.wall"
  else
    echo "bench: $1 failed after $((SECONDS - start)) s: see $out/$1.log" >&2
  fi
}

print_table() {
  local c failed=0
  echo "| task | setting | seeds | test n | loop | QPO % | best single % | policy_mode % | oracle % | distinct prompts | QPO - best single [95%] | reward | wall s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  for c in $cases; do
    if [ -n "$(skip_reason "$c")" ]; then
      echo "| $c | $(skip_reason "$c") |"
    elif [ -f "$out/$c.wall" ] && [ -f "$out/$c/results.json" ]; then
      row "$out/$c.json" "$out/$c/results.json" "$(cat "$out/$c.wall")"
    else
      echo "| $c | no result: see $out/$c.log |"
      failed=$((failed + 1))
    fi
  done
  for c in $cases; do
    [ -f "$out/$c/results.json" ] || continue
    jq -r --arg c "$c" '.warnings[] | "\($c): warning: \(.)"' "$out/$c/results.json"
  done
  [ "$failed" -eq 0 ]
}

# All in one function, and exit on main's line: bash reads a script as it runs, so an edit
# to this file during a run of many minutes must not reach the running one.
main() {
  src="$(cd "$(dirname "$0")/.." && pwd)"
  qpo="${QPO_BIN:-$src/build/qpo}"
  data="${QPO_DATA_DIR:-$src/../shared/data}"
  out="./qpo-bench-vs-best"
  cases=$CASES
  quick=false
  table_only=false
  parse_args "$@"
  check_inputs
  mkdir -p "$out"
  if ! $table_only; then
    # qpo demo starts its children from its own file: a rebuild during a run of many
    # minutes would take it away from under them.
    cp "$qpo" "$out/qpo.bin"
    qpo="$out/qpo.bin"
    echo "bench: $(date -u +%FT%TZ), $(nproc) cores, $(uname -n); $($quick && echo quick || echo full) run; logs in $out/" >&2
    local c
    for c in $cases; do
      if [ -z "$(skip_reason "$c")" ]; then run "$c"; else echo "bench: $c: $(skip_reason "$c")" >&2; fi
    done
  fi
  print_table
}

main "$@"; exit
