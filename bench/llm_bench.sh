#!/usr/bin/env bash
# Target-LLM client throughput against `qpo sim-llm` on this machine (client and server share
# its cores). Two runs at 256 in flight: 0 ms simulated latency (the client's and server's
# per-call cost is all there is), and 50 ms (how close the client gets to the ideal
# inflight / latency). Prints each JSON line and the ratio achieved / ideal.
# usage: bench/llm_bench.sh [QPO_BINARY] [REQUESTS]   (defaults: build/qpo, 50000)
# The measured window includes the ramp-up (256 new connections) and the drain of the last
# calls, about one latency each; 50000 calls keep that under 2% at 50 ms.
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
qpo="${1:-$here/build/qpo}"
requests="${2:-50000}"
inflight=256
[ -x "$qpo" ] || { echo "llm_bench: no qpo binary at $qpo (build first)" >&2; exit 2; }

sim_pid=""
cleanup() { [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null && wait "$sim_pid" 2>/dev/null || true; }
trap cleanup EXIT

# Starts the simulator on a free port with the given latency; sets $url.
start_sim() {
    local out
    out="$(mktemp)"
    "$qpo" sim-llm --listen 127.0.0.1:0 --latency-ms "$1" >"$out" 2>/dev/null &
    sim_pid=$!
    for _ in $(seq 1 100); do
        url="$(head -n1 "$out" 2>/dev/null || true)"
        [ -n "$url" ] && break
        sleep 0.05
    done
    rm -f "$out"
    [ -n "$url" ] || { echo "llm_bench: qpo sim-llm did not start" >&2; exit 1; }
}

run() { # latency_ms -> prints the bench line and the ratio
    local latency="$1" line cps
    start_sim "$latency"
    "$qpo" bench llm --target "$url" --model qpo-sim --inflight "$inflight" \
        --requests "$requests" --json >/dev/null # warm-up: connections, page cache
    line="$("$qpo" bench llm --target "$url" --model qpo-sim --inflight "$inflight" \
        --requests "$requests" --json)"
    cleanup
    sim_pid=""
    cps="$(sed -E 's/.*"calls_per_s":([0-9.eE+-]+).*/\1/' <<<"$line")"
    echo "latency ${latency} ms, ${inflight} in flight: $line"
    if [ "$latency" -gt 0 ]; then
        awk -v c="$cps" -v n="$inflight" -v l="$latency" 'BEGIN {
            ideal = n / (l / 1000.0)
            printf "  achieved %.0f calls/s of ideal %.0f (inflight/latency): ratio %.3f (target >= 0.90)\n", c, ideal, c / ideal }'
    else
        awk -v c="$cps" 'BEGIN { printf "  achieved %.0f calls/s: ratio to the 4000 calls/s target %.2f\n", c, c / 4000 }'
    fi
}

run 0
run 50
