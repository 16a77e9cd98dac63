#!/usr/bin/env bash
# bench/vm/run.sh: the enforcement overhead benchmark (bench/vm/enforce_bench.ts)
# inside QEMU/TCG guests with BPF LSM on, one boot per kernel; prints each
# guest's table. Never fails on timing; exits non-zero only if a guest could
# not run the benchmark.
#
#   bash bench/vm/run.sh [6.1] [6.12]        (default: 6.1 6.12)
#   env: AEGIS_BENCH_TARGET_MS (per measurement, 1500), AEGIS_BENCH_ROUNDS (3),
#        AEGIS_BENCH_VM_TIMEOUT (seconds per boot, 900)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
deno=${DENO:-$root/.tools/bin/deno}
[ "$(id -u)" -eq 0 ] || { echo "bench/vm: needs root (QEMU harness)" >&2; exit 1; }
[ -f dist/gen/embedded.ts ] || bash build/build.sh
mkdir -p dist/bench
gcc -O2 -Wall -Wextra -Werror -o dist/bench/ops bench/vm/ops.c
printf 'int main(void) { return 0; }\n' | gcc -O2 -static -o dist/bench/true-static -x c -
# type errors fail on the host; the guest runs with --no-check
"$deno" check bench/vm/enforce_bench.ts >/dev/null

kernels=("$@")
[ ${#kernels[@]} -gt 0 ] || kernels=(6.1 6.12)
status=0
for k in "${kernels[@]}"; do
  results=$root/.cache/vm/bench/enforce-$k-$(date +%Y%m%d-%H%M%S)
  mkdir -p "$results"
  echo "== bench/vm: kernel $k, lsm on (QEMU TCG; results in $results)"
  rc=0
  # the guest's output streams over the serial console (tee keeps a copy)
  bash scripts/vm/run.sh --kernel "$k" --lsm on --timeout "${AEGIS_BENCH_VM_TIMEOUT:-900}" \
    --results "$results" \
    -e "AEGIS_BENCH_TARGET_MS=${AEGIS_BENCH_TARGET_MS:-1500}" \
    -e "AEGIS_BENCH_ROUNDS=${AEGIS_BENCH_ROUNDS:-3}" \
    -- bash -c 'set -o pipefail; ip link set lo up &&
      deno run -A --no-check bench/vm/enforce_bench.ts dist/bench/ops dist/bench/true-static 2>&1 |
      tee "$AEGIS_VM_RESULTS/bench.txt"' || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "bench/vm: kernel $k: guest exit status $rc (see $results/console.log)" >&2
    status=1
  fi
done
exit "$status"
