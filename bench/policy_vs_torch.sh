#!/usr/bin/env bash
# qpo's CPU policy training step beside PyTorch's on the same shapes, in one run.
#
#   bench/policy_vs_torch.sh [--config tiny|gpt2] [--batch B] [--steps N] [PGDT_TORCH_PY]
#
# PGDT_TORCH_PY (or $QPO_PGDT_TORCH) is the baseline script, by default ../shared/bench/
# pgdt_torch.py beside the repository; it runs with $QPO_TORCH_PYTHON (/usr/bin/python3, which
# has torch). Both sides get the same threads (OMP_NUM_THREADS, default: all cores) and passive
# OpenMP waiting. Prints both JSON lines and the ratios (qpo / torch; > 1 means qpo is faster).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
config=tiny batch=8 steps=10 pgdt=${QPO_PGDT_TORCH:-$root/../shared/bench/pgdt_torch.py}
while [ $# -gt 0 ]; do
  case $1 in
    --config) config=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) pgdt=$1; shift ;;
  esac
done
qpo=${QPO_BIN:-$root/build/qpo}
python=${QPO_TORCH_PYTHON:-/usr/bin/python3}
[ -x "$qpo" ] || { echo "no qpo binary at $qpo (build first or set QPO_BIN)" >&2; exit 2; }
[ -f "$pgdt" ] || { echo "no pgdt_torch.py at $pgdt (pass its path)" >&2; exit 2; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

ours=$("$qpo" bench policy --config "$config" --batch "$batch" --steps "$steps" --json)
theirs=$("$python" "$pgdt" bench --device cpu --config "$config" --batch "$batch" \
         --steps "$steps" --warmup 2)
echo "$ours"
echo "$theirs"
"$python" - "$ours" "$theirs" <<'PY'
import json, sys
q, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(json.dumps({"config": q["config"], "batch": q["batch"], "threads": q["threads"],
                  "train_tokens_per_s_ratio": round(q["tokens_per_s"] / t["tokens_per_s"], 3),
                  "qpo_ms_per_step": q["ms_per_step"], "torch_ms_per_step": t["ms_per_step"],
                  "qpo_gen_tokens_per_s": q["gen_tokens_per_s"]}))
PY
