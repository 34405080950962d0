#!/usr/bin/env bash
# Entry point for a fresh Debian 12 clone: installs what qpo needs, builds, and runs.
#   ./qpo.sh demo     the main job on embedded defaults (qpo demo: throwaway PostgreSQL cluster)
#   ./qpo.sh test     the whole test suite (ctest)
#   ./qpo.sh test-sanitize   the suite again under ASan+UBSan
#   ./qpo.sh cuda-check      compile the CUDA backend (policy-only build) and run its gpu tests
#   ./qpo.sh deploy-check    docker/: compose config (both profiles), Dockerfile lint, entrypoint
#   ./qpo.sh version         the version `qpo --version` prints (image labels)
#   ./qpo.sh fuzz [SECONDS]  each libFuzzer target of tests/fuzz for SECONDS (default 60), clang
#   ./qpo.sh test-valgrind [REGEX]   the CPU-path tests under valgrind memcheck (on demand)
#   ./qpo.sh build | deps     (QPO_CUDA=AUTO in the environment builds the CUDA backend in)
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
# OpenMP threads that spin while waiting make the CPU policy many times slower when tests,
# workers and PostgreSQL share a few cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

# The Debian packages: scripts/install-deps.sh holds the lists (build, test, runtime), which the
# images (docker/) install from too.
deps() {
  scripts/install-deps.sh build test
}

build() {
  local dir=${1:-build} ; shift || true
  # -Werror is explicit here so that CI keeps it whatever the option's default becomes.
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQPO_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)" ${build_target:+--target "$build_target"}
}

# Node packages the tests use as independent references (the official OpenAI client, a
# reference GPT-2 tokenizer): every package-lock.json under tests/ and bench/, installed once.
npm_deps() {
  local lock
  while IFS= read -r lock; do
    local dir; dir=$(dirname "$lock")
    [ -d "$dir/node_modules" ] || (cd "$dir" && npm ci --silent --no-audit --no-fund >/dev/null)
  done < <(find tests bench -name package-lock.json -not -path '*/node_modules/*' 2>/dev/null)
}

run_tests() {
  local dir=$1
  (cd "$dir" && ctest --output-on-failure -j"${QPO_TEST_JOBS:-2}")
}

# The CUDA backend links cuBLAS/cuBLASLt, whose loading adds ~1.7 s and ~200 MB to every qpo
# process (measured 2026-11-30), which the many short-lived processes of the tests and the demo
# pay for nothing on a machine without a GPU. So the default build is CPU-only; QPO_CUDA=AUTO
# (or ON) in the environment builds it in, and `cuda-check` compiles it on its own.
cuda=${QPO_CUDA:-OFF}

# Compile-checks the CUDA backend where nvcc is (policy-only build) and runs the gpu-labelled
# tests, which skip with a message when no device is visible.
cuda_check() {
  if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
    echo "qpo.sh: no nvcc: CUDA backend not compiled" >&2
    return 0
  fi
  build build-cuda -DQPO_POLICY_ONLY=ON -DQPO_CUDA=ON
  (cd build-cuda && ctest --output-on-failure -L gpu)
}

# libFuzzer targets (tests/fuzz) under ASan+UBSan, each for $1 seconds (default 60), starting
# from the committed seed corpus; new inputs go to build-fuzz/corpus, crashers to
# build-fuzz/crashes (keep one as a regression: tests/fuzz/README.md). Exit 1 on a crash.
fuzz() {
  local secs=${1:-60} dir=build-fuzz failed=0 t
  local targets=(safetensors config import d0 tokenizer llm_parse)
  cmake -S . -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQPO_WERROR=ON \
    -DQPO_FUZZ=ON -DQPO_CUDA=OFF >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null
  mkdir -p "$dir/crashes"
  # One target per core at a time: libFuzzer is single-threaded, so CI gets 60 s a target in
  # half the wall time on 2 cores.
  for t in "${targets[@]}"; do
    while (($(jobs -rp | wc -l) >= $(nproc))); do wait -n || true; done
    fuzz_one "$secs" "$dir" "$t" &
  done
  wait
  for t in "${targets[@]}"; do
    if [[ -f "$dir/fuzz_$t.ok" ]]; then
      echo "qpo.sh: fuzz_$t: $(grep -Eo 'Done [0-9]+ runs in [0-9]+ second' "$dir/fuzz_$t.log")s, no crash"
    else
      echo "qpo.sh: fuzz_$t FAILED (log $dir/fuzz_$t.log):" >&2
      grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$dir/fuzz_$t.log" | head -5 >&2
      failed=1
    fi
  done
  return $failed
}

# One libFuzzer target for $1 seconds; leaves $2/fuzz_$3.ok when it ends without a crash.
fuzz_one() {
  local secs=$1 dir=$2 t=$3
  rm -f "$dir/fuzz_$t.ok"
  mkdir -p "$dir/corpus/$t"
  if ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$dir/tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$dir/crashes/$t-" "$dir/corpus/$t" "tests/fuzz/corpus/$t" \
    >"$dir/fuzz_$t.log" 2>&1; then
    touch "$dir/fuzz_$t.ok"
  fi
}

# The CPU-path tests (or those matching $1) under valgrind memcheck: each test program and the
# qpo processes it starts (tests/valgrind/run.sh, the ctest emulator), one log per process,
# all of them read at the end: any memory error fails the run with its report. Leaks are
# ASan's job (test-sanitize). Memcheck runs code tens of times slower, so the build multiplies
# every time limit of the tests (ctest's TIMEOUT and the tests' own deadlines) by
# QPO_TEST_TIME_SCALE (30 here unless set; tests/README.md). Tests labelled gpu, slow or chaos
# are left out, each named with the reason. On demand, not in CI.
test_valgrind() {
  local regex=${1:-.}
  local scale=${QPO_TEST_TIME_SCALE:-30}
  local logs=$root/build-valgrind/valgrind-logs
  build build-valgrind -DCMAKE_BUILD_TYPE=Debug -DQPO_CUDA=OFF -DQPO_TEST_TIME_SCALE="$scale" \
    "-DCMAKE_CROSSCOMPILING_EMULATOR=$root/tests/valgrind/run.sh;$logs"
  rm -rf "$logs" && mkdir -p "$logs"
  local label why
  for label in gpu slow chaos; do
    case $label in
      gpu) why="device code, which memcheck cannot see" ;;
      slow) why="statistical and CPU-bound: hours under memcheck, for code other tests cover" ;;
      chaos) why="kill storms over whole experiments: hours, and their checks are of processes" ;;
    esac
    (cd build-valgrind && ctest -N -L "^$label\$" -R "$regex") |
      sed -n "s/^ *Test *#[0-9]*: \(.*\)/test-valgrind: excluded \1 (label $label: $why)/p"
  done
  echo "test-valgrind: every time limit of the tests x$scale (QPO_TEST_TIME_SCALE)"
  local rc=0
  (cd build-valgrind && ctest --output-on-failure -j"${QPO_TEST_JOBS:-2}" -R "$regex" \
    -LE 'gpu|slow|chaos') || rc=$?
  valgrind_report "$logs" || rc=1
  return $rc
}

# Every process's memcheck log: the count, and the whole log of each that reported an error
# (a process SIGKILLed by its test never prints its ERROR SUMMARY, so the error lines count).
valgrind_report() {
  local logs=$1 bad
  bad=$(grep -lE '^==[0-9]+== (ERROR SUMMARY: [1-9]|Invalid |Conditional jump|Use of uninit|Syscall param|Mismatched free|Source and destination overlap|Argument .* of function)' \
    "$logs"/*.log 2>/dev/null || true)
  echo "test-valgrind: $(find "$logs" -name '*.log' | wc -l) processes checked," \
    "$(printf '%s' "$bad" | grep -c . || true) with memcheck errors"
  local f
  for f in $bad; do
    echo "--- $f"
    cat "$f"
  done
  [ -z "$bad" ]
}

case "${1:-help}" in
  deps) deps ;;
  build) deps; build build -DQPO_CUDA="$cuda" ;;
  test) deps; npm_deps; build build -DQPO_CUDA="$cuda"; run_tests build ;;
  cuda-check) deps; cuda_check ;;
  test-sanitize)
    # CPU-only: ASan cannot see device code (compute-sanitizer can, on a GPU machine), and
    # the CUDA runtime's own allocations would read as leaks.
    deps; npm_deps; build build-asan -DQPO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DQPO_CUDA=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 run_tests build-asan ;;
  demo) deps; build build -DQPO_CUDA="$cuda"; shift; exec build/qpo demo "$@" ;;
  deploy-check) deps; scripts/install-deps.sh ci; npm_deps; build_target=qpo build build -DQPO_CUDA="$cuda"
    docker/deploy-check.sh build/qpo ;;
  version) cmake -DQPO_SOURCE_DIR="$root" -P cmake/version.cmake ;;
  fuzz) scripts/install-deps.sh build check; shift; fuzz "$@" ;;
  test-valgrind) scripts/install-deps.sh build test check; npm_deps; shift; test_valgrind "$@" ;;
  *) sed -n '2,11p' "$0"; exit 2 ;;
esac
