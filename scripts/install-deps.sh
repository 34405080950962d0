#!/usr/bin/env bash
# The Debian packages qpo needs, in one place: ./qpo.sh (development, tests, CI) and the
# images (docker/) install from here, so a package added for the build reaches both.
#   scripts/install-deps.sh GROUP...          install what is missing (apt-get; sudo when not root)
#   scripts/install-deps.sh --print GROUP...  print the packages, one a line
# Groups: build (compiler, CMake, the -dev libraries), test (PostgreSQL server, Node for the
# reference clients, Chromium for the report test), ci (the deployment linters and promtool:
# only CI and ./qpo.sh deploy-check install them, because Debian's prometheus package starts a
# Prometheus server as a service where systemd runs), check (clang with libFuzzer and
# valgrind, for ./qpo.sh fuzz and test-valgrind), runtime (the
# shared libraries the qpo binary loads, for the images' last stage; ./qpo.sh deploy-check
# checks the list against the built binary). The names hold on Debian 12 and on the Ubuntu
# 22.04 of NVIDIA's CUDA images.
set -euo pipefail

build=(
  build-essential cmake pkg-config git
  libpq-dev libcurl4-openssl-dev libevent-dev libcmocka-dev libjansson-dev libpcre2-dev
  libssl-dev libopenblas-dev libyaml-dev
  openssl  # the TLS tests make their CA and certificates with the openssl CLI
)
test=(
  postgresql postgresql-contrib
  nodejs npm
  chromium
  jq  # bench/qpo_vs_best_single.sh reads qpo results' JSON (tests/demo/test_bench_table.sh)
)
ci=(
  docker-compose shellcheck
  prometheus  # promtool lints the /metrics text in tests/observe (they skip the lint without it)
)
check=(
  clang valgrind
)
runtime=(
  libpq5 libcurl4 libevent-2.1-7 libevent-pthreads-2.1-7 libjansson4 libpcre2-8-0 libssl3
  libopenblas0-pthread libyaml-0-2 libgomp1 ca-certificates
)

print=false
[[ ${1:-} == --print ]] && { print=true; shift; }
[[ $# -gt 0 ]] || { sed -n '2,13p' "$0" >&2; exit 2; }
wanted=()
for group in "$@"; do
  case $group in
    build) wanted+=("${build[@]}") ;;
    test) wanted+=("${test[@]}") ;;
    ci) wanted+=("${ci[@]}") ;;
    runtime) wanted+=("${runtime[@]}") ;;
    check) wanted+=("${check[@]}") ;;
    *) echo "install-deps.sh: unknown group '$group' (build, test, ci, check, runtime)" >&2; exit 2 ;;
  esac
done
if $print; then printf '%s\n' "${wanted[@]}"; exit 0; fi

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Debian's nodejs may be absent while a newer node is installed another way; either serves.
if command -v node >/dev/null && command -v npm >/dev/null; then
  keep=()
  for p in "${missing[@]+"${missing[@]}"}"; do [[ $p == nodejs || $p == npm ]] || keep+=("$p"); done
  missing=("${keep[@]+"${keep[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps.sh: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
