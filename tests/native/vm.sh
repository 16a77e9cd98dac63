#!/usr/bin/env bash
# Run the native smoke test (built on the host by tests/native/run.sh) inside
# the VM kernels through scripts/vm/run.sh: 6.1 and 6.12 with bpf in lsm=
# (real lsm/file_open enforcement) and 6.1 without it (loads, attaches, does
# not enforce). Root only; run `bash tests/native/run.sh` first.
#   bash tests/native/vm.sh
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
bin=dist/native/test/shim_smoke
[ -x "$bin" ] || { echo "vm.sh: $bin missing; run: bash tests/native/run.sh" >&2; exit 1; }

fail=0
for cell in "6.1 on" "6.12 on" "6.1 off"; do
	read -r kernel lsm <<<"$cell"
	res=$(mktemp -d)
	rc=0
	scripts/vm/run.sh --kernel "$kernel" --lsm "$lsm" --timeout 300 -q --results "$res" \
		-- "$bin" dist/native/aegis.bpf.o >/dev/null 2>&1 || rc=$?
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$res/console.log" || echo "no summary")
	printf 'vm %-4s lsm=%-3s exit=%d  %s\n' "$kernel" "$lsm" "$rc" "$summary"
	grep -E '^FAIL' "$res/console.log" | sed 's/^/    /' || true
	[ "$rc" -eq 0 ] || fail=1
	rm -rf "$res"
done
exit $fail
