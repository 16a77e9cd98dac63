#!/usr/bin/env bash
# Prove the shim is self-contained: run the smoke test in a private mount
# namespace where the host's libbpf and libelf shared libraries are hidden
# (/dev/null bind-mounted over them), after showing they really are hidden.
# Root only. Run `bash build/native.sh` first.
#   bash tests/native/selfcontained.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
libdir=/usr/lib/x86_64-linux-gnu
say() { printf 'selfcontained: %s\n' "$*"; }

probe_bin=$root/dist/native/test/dlopen_probe
build_probe() {
	mkdir -p "$(dirname "$probe_bin")"
	gcc -O2 -Wall -Werror -x c -o "$probe_bin" - -ldl <<'C'
#include <dlfcn.h>
#include <stdio.h>
/* Exit 0 if every library given loads, 1 if any fails (printing why). */
int main(int argc, char **argv)
{
	int i, bad = 0;
	for (i = 1; i < argc; i++) {
		void *h = dlopen(argv[i], RTLD_NOW | RTLD_LOCAL);
		printf("  dlopen(%s): %s\n", argv[i], h ? "loaded" : dlerror());
		bad |= !h;
	}
	return bad;
}
C
}

host_libs() {
	local f
	for f in "$libdir"/libbpf.so* "$libdir"/libelf*.so*; do
		[ -e "$f" ] && readlink -f "$f"
	done | sort -u
}

if [ "${1:-}" != --inside ]; then
	[ "$(id -u)" -eq 0 ] || { say "SKIP: needs root (mount namespace, BPF)" >&2; exit 1; }
	[ -f dist/native/libaegis_shim.so ] || { say "run: bash build/native.sh" >&2; exit 1; }
	build_probe
	if [ -z "$(host_libs)" ]; then
		say "host has no libbpf/libelf shared library at all: nothing to hide"
	else
		say "control, host namespace: the libraries load"
		"$probe_bin" libbpf.so.1 libelf.so.1 || { say "FAIL: control dlopen failed" >&2; exit 1; }
	fi
	exec unshare --mount --propagation private bash "$0" --inside
fi

# ---- inside the private mount namespace ------------------------------------
fail=0
while read -r lib; do
	[ -n "$lib" ] || continue
	mount --bind /dev/null "$lib"
	say "hidden: $lib"
done < <(host_libs)
say "hidden libraries no longer load:"
if "$probe_bin" libbpf.so.1 libelf.so.1; then
	say "FAIL: libbpf/libelf still load inside the namespace"
	fail=1
else
	say "ok   - libbpf.so.1 and libelf.so.1 cannot be loaded"
fi
if ldd dist/native/libaegis_shim.so | grep -Eq 'libbpf|libelf'; then
	say "FAIL: the shim depends on libbpf/libelf"
	fail=1
else
	say "ok   - ldd of the shim names neither libbpf nor libelf"
fi
if ! bash tests/native/run.sh; then
	say "FAIL: smoke test failed with the host libraries hidden"
	fail=1
fi
if [ $fail -eq 0 ]; then
	say "PASS: the smoke test passes without the host's libbpf/libelf"
fi
exit $fail
