#!/usr/bin/env bash
# bench/decision/run.sh: builds the null and fexit objects (the clang flags
# build/native.sh gives bpf/) and `ops`, then runs decision_bench.ts on this
# host. Root; never fails on timing.
#   bash bench/decision/run.sh [rounds (7)] [opens per window (200000)]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
deno=${DENO:-$root/.tools/bin/deno}
[ "$(id -u)" -eq 0 ] || { echo "bench/decision: needs root (loads BPF programs)" >&2; exit 1; }
[ -f dist/gen/embedded.ts ] || bash build/build.sh
# shellcheck source=build/native-sources.env
. build/native-sources.env
cache=${AEGIS_NATIVE_CACHE:-$root/.cache/native}
libbpf_inc=$(ls -d "$cache/out/libbpf-$(printf '%s' "$LIBBPF_SRC_VERSION" | tr ':~' '__')"-*/include 2>/dev/null | tail -1 || true)
[ -d "$libbpf_inc" ] || { echo "bench/decision: no libbpf headers under $cache/out (run build/build.sh)" >&2; exit 1; }
out=dist/bench
mkdir -p "$out"
for o in null_tp decide_fexit; do
  clang -g -O2 -target bpf -Wall -Werror -D__TARGET_ARCH_x86 \
    -I bpf/include -I bpf -I bpf/vmlinux -I "$libbpf_inc" \
    -c "bench/decision/$o.bpf.c" -o "$out/$o.bpf.o"
done
gcc -O2 -Wall -Wextra -Werror -o "$out/ops" bench/vm/ops.c
"$deno" run -A bench/decision/decision_bench.ts "$out/ops" "$out/null_tp.bpf.o" \
  "$out/decide_fexit.bpf.o" "${1:-7}" "${2:-200000}"
