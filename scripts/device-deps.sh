#!/usr/bin/env bash
# Run HERE (a Debian machine with network), before a GPU run: fills .devdeps/ (git-ignored)
# with what scripts/device-check.sh needs on a GPU machine that has nvcc, cmake and PyTorch
# but neither network nor the -dev libraries qpo links:
#   .devdeps/debs/     the Debian packages of the policy-only build (jansson, PCRE2, OpenBLAS,
#                      cmocka, pkgconf), unpacked there into a private prefix, never into /
#   .devdeps/bench/    pgdt_torch.py (the PyTorch baseline and fixture writer)
# Usage: scripts/device-deps.sh [--shared DIR]   (DIR: ../shared by default)
set -euo pipefail
cd "$(dirname "$0")/.."
shared=../shared
[ "${1:-}" = --shared ] && shared=$2

# Runtime libraries and their -dev halves; the policy-only build links nothing else.
pkgs=(
  libjansson4 libjansson-dev
  libpcre2-8-0 libpcre2-dev
  libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0
  libcmocka0 libcmocka-dev
  pkgconf pkgconf-bin libpkgconf3
)

rm -rf .devdeps/debs .devdeps/bench
mkdir -p .devdeps/debs .devdeps/bench
(cd .devdeps/debs && apt-get download "${pkgs[@]}")
# The static archives are most of OpenBLAS's size and the build links the shared library.
for f in .devdeps/debs/libopenblas-pthread-dev_*.deb; do
  tmp=$(mktemp -d)
  dpkg-deb -R "$f" "$tmp"
  find "$tmp" -name '*.a' -delete
  dpkg-deb -b "$tmp" "$f" >/dev/null
  rm -rf "$tmp"
done

if [ -f "$shared/bench/pgdt_torch.py" ]; then
  cp "$shared/bench/pgdt_torch.py" .devdeps/bench/
else
  echo "device-deps: $shared/bench/pgdt_torch.py not found (--shared DIR); the GPU run will skip" \
       "the PyTorch baseline and the gpt2 fixtures" >&2
fi
du -sh .devdeps
echo "device-deps: ready; carry .devdeps in the run (see scripts/README.md)"
