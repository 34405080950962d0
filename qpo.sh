#!/usr/bin/env bash
# Entry point for a fresh Debian 12 clone: installs what qpo needs, builds, and runs.
#   ./qpo.sh demo     the main job on embedded defaults (qpo demo: throwaway PostgreSQL cluster)
#   ./qpo.sh test     the whole test suite (ctest)
#   ./qpo.sh test-sanitize   the suite again under ASan+UBSan
#   ./qpo.sh cuda-check      compile the CUDA backend (policy-only build) and run its gpu tests
#   ./qpo.sh build | deps     (QPO_CUDA=AUTO in the environment builds the CUDA backend in)
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
# OpenMP threads that spin while waiting make the CPU policy many times slower when tests,
# workers and PostgreSQL share a few cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

debian_packages=(
  build-essential cmake pkg-config git
  libpq-dev libcurl4-openssl-dev libevent-dev libcmocka-dev libjansson-dev libpcre2-dev
  libssl-dev libopenblas-dev libyaml-dev openssl
  postgresql postgresql-contrib
  nodejs npm
  chromium
)

deps() {
  local missing=()
  for p in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  # Debian's nodejs may be absent while a newer node is installed another way; either serves.
  if command -v node >/dev/null && command -v npm >/dev/null; then
    local keep=()
    for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || keep+=("$p"); done
    missing=("${keep[@]+"${keep[@]}"}")
  fi
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "qpo.sh: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

build() {
  local dir=${1:-build} ; shift || true
  # -Werror is explicit here so that CI keeps it whatever the option's default becomes.
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQPO_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$(nproc)"
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
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
