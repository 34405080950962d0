#!/usr/bin/env bash
# bench/qpo_vs_best_single.sh's own logic, without running a benchmark:
#   test_bench_table.sh SOURCE_DIR
# Bad usage exits 2 naming the flag or case; --table-only turns a run's results.json (here a
# written one, in the shape `qpo results --format json` prints) into the table row: the last
# loop's QPO, best single, that loop's policy_mode, the oracle and QPO - best single from
# vs_baselines (not the loop's best baseline), the config's reward, the wall time; a case with
# no result is a row saying so and exit 1; GSM8K, which has no test split, a row saying why.
set -euo pipefail
src=$1
bench="$src/bench/qpo_vs_best_single.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
check() { # check NAME EXPECTED ACTUAL
  if [[ $2 == "$3" ]]; then passes=$((passes + 1)); else
    echo "FAIL $1: expected [$2], got [$3]" >&2; fails=$((fails + 1)); fi
}
contains() { # contains NAME NEEDLE HAYSTACK
  if [[ $3 == *"$2"* ]]; then passes=$((passes + 1)); else
    echo "FAIL $1: [$2] not in [$3]" >&2; fails=$((fails + 1)); fi
}
status() { set +e; "$@" >"$tmp/stdout" 2>"$tmp/stderr"; echo $?; set -e; }

check "bad flag exits 2" 2 "$(status "$bench" --bogus)"
contains "bad flag named" "unknown argument '--bogus'" "$(cat "$tmp/stderr")"
contains "usage printed" "usage: bench/qpo_vs_best_single.sh" "$(cat "$tmp/stderr")"
check "unknown case exits 2" 2 "$(status "$bench" --cases "tweet_zero nope" --table-only)"
contains "unknown case named" "unknown case 'nope'" "$(cat "$tmp/stderr")"
check "--out without value exits 2" 2 "$(status "$bench" --out)"
contains "--out named" "--out needs a value" "$(cat "$tmp/stderr")"
check "missing binary exits 2" 2 "$(QPO_BIN="$tmp/none" status "$bench" --cases svamp --out "$tmp/o")"
contains "missing binary named" "$tmp/none is missing" "$(cat "$tmp/stderr")"

# A finished svamp case: QPO's last loop is 2; policy_mode beats best single there, so the
# loop's best baseline is policy_mode, yet the table quotes QPO - best single.
out="$tmp/run"
mkdir -p "$out/svamp"
jq '.reward = {"avg_acc_weight": 0.5}' "$src/bench/configs/svamp.json" >"$out/svamp.json"
echo 187 >"$out/svamp.wall"
cat >"$out/svamp/results.json" <<'JSON'
{"rows": [
 {"task": "svamp", "setting": "zero_shot", "target": "sim", "source": "baseline:best_single",
  "loop": 0, "seeds": 3, "mean_acc": 0.61, "std_acc": 0.02, "items_min": 200, "items_max": 200,
  "distinct_prompts": null},
 {"task": "svamp", "setting": "zero_shot", "target": "sim", "source": "oracle", "loop": 0,
  "seeds": 3, "mean_acc": 0.905, "std_acc": 0.01, "items_min": 200, "items_max": 200,
  "distinct_prompts": null},
 {"task": "svamp", "setting": "zero_shot", "target": "sim", "source": "qpo", "loop": 1,
  "seeds": 3, "mean_acc": 0.5, "std_acc": 0.1, "items_min": 200, "items_max": 200,
  "distinct_prompts": 4, "vs_baselines": []},
 {"task": "svamp", "setting": "zero_shot", "target": "sim", "source": "qpo", "loop": 2,
  "seeds": 3, "mean_acc": 0.6433333, "std_acc": 0.0125, "items_min": 198, "items_max": 200,
  "distinct_prompts": 2.3333333,
  "vs_best_baseline": {"baseline": "baseline:policy_mode", "diff": -0.01, "ci_low": -0.02,
                       "ci_high": 0.0, "paired_items_min": 198},
  "vs_baselines": [
   {"baseline": "baseline:best_single", "diff": 0.0333333, "ci_low": -0.004, "ci_high": 0.071,
    "paired_items_min": 198},
   {"baseline": "baseline:policy_mode", "diff": -0.01, "ci_low": -0.02, "ci_high": 0.0,
    "paired_items_min": 198}]},
 {"task": "svamp", "setting": "zero_shot", "target": "sim", "source": "baseline:policy_mode",
  "loop": 2, "seeds": 3, "mean_acc": 0.6533333, "std_acc": null, "items_min": 200,
  "items_max": 200, "distinct_prompts": null}],
 "warnings": ["svamp zero_shot sim loop 2: too wide"]}
JSON
check "--table-only with a result exits 0" 0 "$(status "$bench" --table-only --out "$out" --cases svamp)"
check "the row" \
  "| svamp | zero_shot | 3 | 198-200 | 2 | 64.3 +- 1.3 | 61.0 +- 2.0 | 65.3 +- n/a | 90.5 | 2.33 | +3.3 [-0.4, +7.1] | {\"avg_acc_weight\":0.5} | 187 |" \
  "$(sed -n 3p "$tmp/stdout")"
contains "the warning" "svamp: warning: svamp zero_shot sim loop 2: too wide" "$(cat "$tmp/stdout")"
jq 'del(.reward)' "$out/svamp.json" >"$out/x" && mv "$out/x" "$out/svamp.json"
status "$bench" --table-only --out "$out" --cases svamp >/dev/null
contains "the authors' reward" "| authors | 187 |" "$(sed -n 3p "$tmp/stdout")"
check "a case without result exits 1" 1 "$(status "$bench" --table-only --out "$out" --cases "svamp tweet_few")"
contains "its row says so" "| tweet_few | no result: see $out/tweet_few.log |" "$(cat "$tmp/stdout")"
if ! grep -q 'gsm8k/test' "$src/config/data-manifest.json"; then
  check "gsm8k without a test split is skipped, not failed" 0 \
    "$(status "$bench" --table-only --out "$out" --cases "svamp gsm8k")"
  contains "its row says why" "| gsm8k | skipped: no GSM8K test split" "$(cat "$tmp/stdout")"
fi

echo "test_bench_table: $passes passed, $fails failed"
[ "$fails" -eq 0 ]
