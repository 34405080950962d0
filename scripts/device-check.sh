#!/usr/bin/env bash
# The CUDA backend's proof on a GPU machine, in one run of under 8 minutes: builds the policy
# alone (QPO_POLICY_ONLY) against the .debs that scripts/device-deps.sh put in .devdeps/,
# runs the `gpu` tests (op by op and whole model against the CPU backend, the PyTorch fixtures
# of the committed tiny set and of a freshly written gpt2 set, determinism, resume, greedy
# prompts, bf16), then `qpo bench policy` (as qpo-policy) for fp32 and bf16 beside pgdt_torch.py bench (eager,
# --compile, --hf) and gen, and prints a summary with the ratios. Writes the summary as JSON
# (and the full log) into $OUT when set.
#
#   scripts/device-check.sh              on the GPU machine (see scripts/README.md for the call)
#   QPO_CUDA=OFF scripts/device-check.sh --dry-run
#                                        here: the same unpacking, configure, build and test
#                                        path, CPU-only, without PyTorch; the gpu tests skip
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dry=0
[ "${1:-}" = --dry-run ] && dry=1
cuda=${QPO_CUDA:-ON}
t_start=$(date +%s)
out=${OUT:-}
log=${out:+$out/device-check.log}
log=${log:-/tmp/qpo-device-check.log}
: >"$log"
results=()   # "name|status|seconds|detail"

say() { printf '%s\n' "$*" | tee -a "$log"; }
# step NAME TIMEOUT CMD...: runs with a time limit, records ok/FAIL/skip and the seconds taken.
# Every step also stops at the run's budget (QPO_CHECK_BUDGET seconds, 460 by default: the
# whole run stays under 8 minutes with the summary), so a slow step costs the later ones, not
# the run; a step with under 15 s of budget left is skipped.
budget=${QPO_CHECK_BUDGET:-460}
step() {
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s) rc
  local left=$(( budget - (t0 - t_start) ))
  if [ $left -lt 15 ]; then
    results+=("$name|SKIPPED(budget)|0")
    say "== $name: skipped, ${left}s of the budget left"
    return 1
  fi
  [ $limit -gt $left ] && limit=$left
  say "== $name: $*"
  timeout --kill-after=10 "$limit" "$@" >>"$log" 2>&1
  rc=$?
  local dt=$(( $(date +%s) - t0 )) st=ok
  [ $rc -eq 0 ] || st="FAIL(rc=$rc)"
  [ $rc -eq 124 ] && st="TIMEOUT(${limit}s)"
  results+=("$name|$st|$dt")
  say "   -> $st in ${dt}s"
  return $rc
}

# 1. the private prefix: every .deb unpacked under /tmp, never into /
prefix=/tmp/qpo-devdeps
rm -rf "$prefix" && mkdir -p "$prefix"
if ! ls .devdeps/debs/*.deb >/dev/null 2>&1; then
  say "device-check: .devdeps/debs is empty: run scripts/device-deps.sh here first and carry .devdeps"
  exit 2
fi
for f in .devdeps/debs/*.deb; do
  if command -v dpkg >/dev/null; then
    dpkg -x "$f" "$prefix"
  else # no dpkg: a .deb is an ar archive holding data.tar.*
    (d=$(mktemp -d) && cd "$d" && ar x "$root/$f" && tar -xf data.tar.* -C "$prefix" && rm -rf "$d")
  fi
done
lib=$prefix/usr/lib/x86_64-linux-gnu
export PKG_CONFIG_LIBDIR=$lib/pkgconfig:$lib/openblas-pthread/pkgconfig:$prefix/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$prefix
# PyTorch runs without the prefix: its libraries must not meet our older libgfortran & co.
py=(env "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}" python3)
export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
pkgconfig=$(command -v pkg-config || echo "$prefix/usr/bin/pkgconf")
say "device-check: prefix $prefix, pkg-config $pkgconfig, CUDA $cuda, dry-run $dry"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total \
  --format=csv,noheader | tee -a "$log"

# 2. the gpt2 PyTorch fixtures, written on the CPU while the build runs
ref=/tmp/qpo-ref-gpt2
torch_py=.devdeps/bench/pgdt_torch.py
have_torch=0
[ $dry -eq 0 ] && [ -f $torch_py ] && "${py[@]}" -c 'import torch' 2>/dev/null && have_torch=1
if [ $have_torch -eq 1 ]; then
  rm -rf $ref
  (OMP_NUM_THREADS=8 timeout 240 "${py[@]}" $torch_py ref --config gpt2 --out $ref >$ref.log 2>&1;
   echo $? >$ref.rc) &
  ref_pid=$!
fi

# 3. configure and build only what the checks need
build=build-device
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
arch=${QPO_CUDA_ARCH:-90}
step configure 120 cmake -S . -B $build "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DQPO_POLICY_ONLY=ON \
  -DQPO_CUDA="$cuda" -DCMAKE_CUDA_ARCHITECTURES="$arch" -DPKG_CONFIG_EXECUTABLE="$pkgconfig" &&
step build 300 cmake --build $build -j"$(nproc)" --target test_policy_cuda_ops \
  test_policy_cuda_model test_policy_cuda_train qpo-policy
built=$?

# 4. the gpu tests: committed tiny fixtures, then the gpt2 fixtures and a gpt2 CPU comparison
if [ $built -eq 0 ]; then
  step gpu-tests 240 ctest --test-dir $build -L gpu --output-on-failure
  if [ $have_torch -eq 1 ]; then
    wait $ref_pid
    if [ "$(cat $ref.rc)" = 0 ]; then
      QPO_CUDA_REF_DIR=$ref QPO_CUDA_TEST_CONFIG=gpt2 \
        step gpu-tests-gpt2 240 $build/tests/policy_cuda/test_policy_cuda_model
    else
      results+=("gpu-tests-gpt2|FAIL(pgdt_torch.py ref: see $ref.log)|0"); cat $ref.log >>"$log"
    fi
  fi
fi

# 4b. memcheck over the op tests: out-of-bounds accesses in kernels nobody has run before
# (compute-sanitizer works on the Firecracker machines; skipped where it is absent)
if [ $built -eq 0 ] && [ $dry -eq 0 ] && command -v compute-sanitizer >/dev/null; then
  step memcheck-ops 90 compute-sanitizer --tool memcheck --error-exitcode 1 \
    $build/tests/policy_cuda/test_policy_cuda_ops
fi

# 5. speed: qpo fp32 and bf16, then the PyTorch baseline in the same run
bench_json=()
bench() { # name limit cmd...: keeps the command's last JSON line
  local name=$1 limit=$2; shift 2
  local f=/tmp/qpo-bench-$name.json
  step "bench-$name" "$limit" bash -c 'set -o pipefail; "$@" | tee '"$f" _ "$@" && \
    bench_json+=("\"$name\": $(grep '^{' $f | tail -1)")
}
if [ $built -eq 0 ]; then
  if [ $dry -eq 1 ]; then
    bench qpo-cpu-tiny 120 $build/tests/policy_cuda/qpo-policy bench policy --backend cpu \
      --config tiny --batch 16 --steps 3 --gen-queries 16 --json
  else
    bench qpo-cuda-fp32 150 $build/tests/policy_cuda/qpo-policy bench policy --backend cuda \
      --config gpt2 --batch 128 --steps 10 --warmup 2 --gen-queries 1000 --json
    bench qpo-cuda-bf16 150 $build/tests/policy_cuda/qpo-policy bench policy --backend cuda-bf16 \
      --config gpt2 --batch 128 --steps 10 --warmup 2 --gen-queries 1000 --json
  fi
fi
if [ $have_torch -eq 1 ]; then
  bench torch-eager-bf16 90 "${py[@]}" $torch_py bench --config gpt2 --batch 128
  bench torch-hf-generate 60 "${py[@]}" $torch_py gen --config gpt2 --queries 1000
  bench torch-hf-eager-bf16 60 "${py[@]}" $torch_py bench --config gpt2 --batch 128 --hf
  bench torch-hf-compile-bf16 150 "${py[@]}" $torch_py bench --config gpt2 --batch 128 --compile --hf
fi

# 6. summary
elapsed=$(( $(date +%s) - t_start ))
say ""
say "== summary (${elapsed}s)"
fails=0
for r in "${results[@]}"; do
  IFS='|' read -r n s d <<<"$r"
  printf '  %-22s %-28s %4ss\n' "$n" "$s" "$d" | tee -a "$log"
  [ "$s" = ok ] || fails=$((fails + 1))
done
json=$(printf '%s,' "${bench_json[@]}")
"${py[@]}" - "$elapsed" "$fails" "{${json%,}}" "$out" <<'PY' | tee -a "$log"
import json, sys
elapsed, fails, benches, out = int(sys.argv[1]), int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
def get(n, k):
    return benches.get(n, {}).get(k)
rows = []
for n, b in benches.items():
    rows.append(f"  {n:22s} {b.get('ms_per_step', '-')!s:>9} ms/step {b.get('tokens_per_s', '-')!s:>11} tok/s"
                f"  MFU {b.get('mfu', '-')!s:>7}  gen {b.get('gen_seconds', b.get('seconds', '-'))!s:>7} s")
print("\n".join(rows))
ratios = {}
best_torch = min([get(n, "ms_per_step") for n in benches if n.startswith("torch-") and get(n, "ms_per_step")] or [0])
for q in ("qpo-cuda-fp32", "qpo-cuda-bf16"):
    if get(q, "ms_per_step") and best_torch:
        ratios[q + " vs best torch (speedup)"] = round(best_torch / get(q, "ms_per_step"), 3)
if get("qpo-cuda-bf16", "gen_seconds") and get("torch-hf-generate", "seconds"):
    ratios["qpo-cuda-bf16 generate vs hf generate (speedup)"] = round(
        get("torch-hf-generate", "seconds") / get("qpo-cuda-bf16", "gen_seconds"), 3)
for k, v in ratios.items():
    print(f"  {k}: {v}")
summary = dict(elapsed_s=elapsed, failures=fails, benches=benches, ratios=ratios)
if out:
    json.dump(summary, open(out + "/device-check.json", "w"), indent=1)
PY
if [ -n "$out" ]; then
  printf '%s\n' "${results[@]}" >"$out/device-check-steps.txt"
fi
exit $(( fails > 0 ))
