#!/usr/bin/env bash
# Host-side negative controls for the VM matrix runner (scripts/vm/test_vm.sh):
# it must report failures and exit non-zero when a test fails, a step fails,
# the kernel logs a warning, the guest panics, the guest hangs, or a test file
# cannot even load; and that it resumes a cell once, only after the emulator's
# own oops (scripts/vm/crash_kind.sh). One cell (6.12/on) per control; ~1.5 min.
# Usage: bash tests/vm/runner_test.sh
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
runner=scripts/vm/test_vm.sh
fx=tests/vm/fixtures
# no control starts the agent: the runner need not bundle it (seconds each time)
export AEGIS_VM_BUNDLE=0
pass=0 fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }
expect() { # description, grep -E pattern, output
  if grep -qE -- "$2" <<<"$3"; then ok "$1"; else bad "$1 (no line matching /$2/)"; fi
}
control() { # name, runner args... -> sets $out $rc
  out=$(bash "$runner" --cells 6.12/on --out "$repo/.cache/vm/runner_test/$1" "${@:2}" 2>&1); rc=$?
  printf '%s\n' "$out" | sed 's/^/    | /'
}

control failing "$fx/failing_fixture.ts"
[ $rc != 0 ] && ok "failing tests: exit $rc" || bad "failing tests: exit 0"
expect "passing test reported ok" 'vm 6\.12/lsm-on +.*control: passes \.\.\. ok$' "$out"
expect "failing test reported FAILED" 'control: fails on purpose \.\.\. FAILED' "$out"
expect "failure message shown" 'deliberate failure' "$out"
expect "skipped test reported" 'control: skipped \.\.\. skipped' "$out"
expect "failing step reported" 'step: inner fails \.\.\. FAILED' "$out"
expect "kernel warning caught by the scan" 'dmesg scan \.\.\. FAILED' "$out"
expect "scan prints the matching line" 'WARNING: CPU: 0 PID: 1 at aegis/runner_test fixture' "$out"
# passes: control: passes, inject (2); fails: 2 tests + scan (3); skipped 1
expect "final line counts" '^2 passed, 3 failed, 1 skipped$' "$(tail -n1 <<<"$out")"

control crash "$fx/crash_fixture.ts"
[ $rc != 0 ] && ok "guest panic: exit $rc" || bad "guest panic: exit 0"
expect "panic reported as crash" 'guest \.\.\. FAILED \(crashed' "$out"
expect "panic line shown" 'Kernel panic' "$out"

# the emulator's own oops after the tests started: the crashed boot is shown with
# its oops, the cell resumes once from the file that was running (docs/vm.md)
control emulator "$fx/passing_fixture.ts" "$fx/emulator_crash_fixture.ts" tests/vm/harness_vmtest.ts
[ $rc = 0 ] && ok "emulator crash resumed: exit 0" || bad "emulator crash resumed: exit $rc"
expect "crash shown, not counted" 'vm 6\.12/on crashed +guest \.\.\. crashed in the emulator after the tests started: Oops: int3 at bpf_lsm_file_open\+0x5/0x10' "$out"
expect "the oops RIP shown" 'RIP: 0010:bpf_lsm_file_open' "$out"
expect "the finished file reported from the crashed boot" 'vm 6\.12/on crashed +tests/vm/fixtures/passing_fixture\.ts: control: a file that passes \.\.\. ok' "$out"
expect "resumed from the running file" 'resumed in a fresh boot from tests/vm/fixtures/emulator_crash_fixture\.ts' "$out"
expect "the crashing file passes when resumed" 'vm 6\.12/lsm-on +tests/vm/fixtures/emulator_crash_fixture\.ts: control: crash like.* \.\.\. ok' "$out"
expect "the file after it ran in the resumed boot" 'vm 6\.12/lsm-on +tests/vm/harness_vmtest\.ts: kernel release matches the cell \.\.\. ok' "$out"
[ "$(grep -c 'control: a file that passes' <<<"$out")" = 1 ] && ok "the finished file did not run twice" ||
  bad "the finished file ran $(grep -c 'control: a file that passes' <<<"$out") times"
# the same oops with its RIP in a BPF JIT image is not the emulator's: it fails
control emulator_bpf -e AEGIS_VM_FAKE_RIP=bpf_prog_6deef7357e7b4530_x+0x12/0x60 "$fx/emulator_crash_fixture.ts"
[ $rc != 0 ] && ok "int3 in a JIT image: exit $rc" || bad "int3 in a JIT image: exit 0"
expect "int3 in a JIT image reported as crash" 'guest \.\.\. FAILED \(crashed' "$out"
! grep -q 'resumed in a fresh boot' <<<"$out" && ok "int3 in a JIT image not resumed" || bad "int3 in a JIT image resumed"

control hang --timeout 25 "$fx/hang_fixture.ts"
[ $rc != 0 ] && ok "guest hang: exit $rc" || bad "guest hang: exit 0"
expect "hang reported as timeout" 'guest \.\.\. FAILED \(timed out after 25s' "$out"

# a broken file next to a good one: the good one still runs, the broken one fails
control broken "$fx/broken_module_fixture.ts" tests/vm/harness_vmtest.ts
[ $rc != 0 ] && ok "module load error: exit $rc" || bad "module load error: exit 0"
expect "load error reported" 'broken_module_fixture\.ts: \(file did not load\) \.\.\. FAILED' "$out"
expect "load error message shown" 'deliberate module load failure' "$out"
expect "the good file still ran" 'harness_vmtest\.ts: kernel release matches the cell \.\.\. ok' "$out"

# a deliberately broken deny (the map left empty) must fail the enforcement test
control broken_deny -e AEGIS_VM_BREAK_DENY=1 tests/vm/lsm_file_open_vmtest.ts
[ $rc != 0 ] && ok "broken deny: exit $rc" || bad "broken deny: exit 0"
expect "broken deny reported FAILED" 'file_open: deny by inode.* \.\.\. FAILED' "$out"
expect "broken deny names the failed assertion" 'denied with the rule' "$out"

echo "$pass passed, $fail failed"
[ $fail = 0 ]
