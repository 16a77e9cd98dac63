#!/usr/bin/env bash
# Build tests/native/shim_smoke.c against dist/native/libaegis_shim.so and run
# it on the host kernel (root). Run `bash build/native.sh` first.
#   bash tests/native/run.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"

dist=$root/dist/native
for f in libaegis_shim.so aegis.bpf.o; do
	[ -f "$dist/$f" ] || { echo "run.sh: $dist/$f missing; run: bash build/native.sh" >&2; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "run.sh: SKIP: needs root to load BPF programs" >&2; exit 1; }

# Test setup only (the agent never mounts anything): bpffs for the pin checks,
# securityfs for the active LSM list.
if ! mountpoint -q /sys/fs/bpf; then
	mount -t bpf bpf /sys/fs/bpf
fi
if ! mountpoint -q /sys/kernel/security; then
	mount -t securityfs none /sys/kernel/security
fi

out=${AEGIS_SMOKE_BIN:-$root/dist/native/test/shim_smoke}
mkdir -p "$(dirname "$out")"
gcc -O2 -Wall -Wextra -Werror -I ffi -I bpf/include -o "$out" tests/native/shim_smoke.c \
	-L "$dist" -laegis_shim -lpthread -Wl,-rpath,"$dist"
exec "$out" "$dist/aegis.bpf.o"
