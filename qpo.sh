#!/usr/bin/env bash
# Entry point for a fresh Debian 12 clone: installs what qpo needs, builds, and runs.
#   ./qpo.sh demo     the main job on embedded defaults (qpo demo: throwaway PostgreSQL cluster)
#   ./qpo.sh test     the whole test suite (ctest)
#   ./qpo.sh test-sanitize   the suite again under ASan+UBSan
#   ./qpo.sh build | deps
set -euo pipefail
cd "$(dirname "$0")"
root=$(pwd)
# OpenMP threads that spin while waiting make the CPU policy many times slower when tests,
# workers and PostgreSQL share a few cores.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

debian_packages=(
  build-essential cmake pkg-config git
  libpq-dev libcurl4-openssl-dev libevent-dev libcmocka-dev libjansson-dev libpcre2-dev
  libssl-dev libopenblas-dev libyaml-dev
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

case "${1:-help}" in
  deps) deps ;;
  build) deps; build build ;;
  test) deps; npm_deps; build build; run_tests build ;;
  test-sanitize)
    # CPU-only: ASan cannot see device code (compute-sanitizer can, on a GPU machine), and
    # the CUDA runtime's own allocations would read as leaks.
    deps; npm_deps; build build-asan -DQPO_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DQPO_CUDA=OFF
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 run_tests build-asan ;;
  demo) deps; build build; shift; exec build/qpo demo "$@" ;;
  *) sed -n '2,8p' "$0"; exit 2 ;;
esac
