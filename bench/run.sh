#!/usr/bin/env bash
# deno task bench: every benchmark, each printing its own side-by-side ratios.
# Benchmarks never fail on timing; they fail only if they cannot run.
# AEGIS_BENCH_VM=1 adds bench/vm (what the shipped agent costs, in VM guests:
# about 30 min per kernel).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
deno=${DENO:-$root/.tools/bin/deno}
[ "$(id -u)" -eq 0 ] || { echo "bench: needs root (loads BPF programs)" >&2; exit 1; }
[ -f dist/gen/embedded.ts ] || bash build/build.sh
bash tests/host/mounts.sh
mkdir -p dist/bench
cc -O2 -Wall -Werror -o dist/bench/loadgen bench/drain/loadgen.c
"$deno" run -A bench/drain/drain_bench.ts dist/bench/loadgen
"$deno" run -A bench/events/events_bench.ts dist/bench/loadgen
# exec telemetry lines: the fast path beside the generic one and a decode-only floor
"$deno" run -A bench/events/exec_line_bench.ts
"$deno" run -A bench/http/http_bench.ts
"$deno" run -A bench/posture/startup_bench.ts 5
# short CLI commands beside a bare deno eval (start-up time and peak RSS)
"$deno" run -A bench/cli/cli_bench.ts 9
# simulate: 1 M recorded events against a candidate policy, beside a read + JSON.parse floor
"$deno" run -A bench/replay/simulate_bench.ts 1000000 3
# the content scan (kernels without IMA hashing) beside sha256sum over the same files
"$deno" run -A bench/policy/content_scan_bench.ts
# the file decision on this host's hardware, beside null programs (bench/decision)
bash bench/decision/run.sh
# The enforcement overhead benchmark boots QEMU/TCG guests (minutes): opt in.
if [ "${AEGIS_BENCH_VM:-0}" = 1 ]; then
  bash bench/vm/run.sh
  # time from run to ENFORCE where BPF LSM works
  bash scripts/vm/run.sh --kernel 6.12 --lsm on --timeout 900 \
    -- deno run -A --no-check bench/posture/startup_bench.ts 5
fi
