#!/usr/bin/env bash
# The vm-systemd test tier (scripts/test.sh; docs/testing.md, docs/vm.md):
#  1. scripts/vm/systemd/run_test.sh: Debian 12 with systemd as PID 1, aegisbpf
#     install --bundle, enable (with run --self-protect), policy apply, reboot;
#     after the reboot the unit is active, READY reached, health
#     --require-enforce holds, the rule denies, a root shell cannot signal the
#     agent or write its state, and `systemctl stop` stops it cleanly (the
#     guards disarmed, the pinned rule still denying).
#  2. Negative controls: the same flow broken on purpose must be reported as a
#     failure by the test's own checks -- and by exactly the checks that the
#     breakage should trip, every other check passing (so a broken harness
#     cannot pass for a control that worked). Each control counts as one result.
#       not-enabled        the unit is started by hand, never enabled
#       policy-not-stored  the stored policy is deleted before the reboot
#     AEGIS_VM_SYSTEMD_CONTROLS selects them (default both; "" for none).
# Ends with "N passed, M failed"; exit 1 if anything failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
controls=${AEGIS_VM_SYSTEMD_CONTROLS-not-enabled policy-not-stored}
out=${AEGIS_VM_SYSTEMD_OUT:-$repo/.cache/vm/systemd/runs/$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
passed=0 failed=0

# checks each control must fail (run_test.sh's check names); all others must pass
expected_failures() {
  case $1 in
    not-enabled) printf '%s\n' \
      "boot 2: aegisbpf.service is enabled" \
      "boot 2: aegisbpf.service is active, by the boot alone" \
      "boot 2: READY reached (ActiveEnterTimestampMonotonic set)" \
      "boot 2: health --require-enforce exit status" \
      "boot 2: the rule stored before the reboot denies (EPERM)" \
      "boot 2: self-protection armed again after the reboot" \
      "boot 2: a root shell's SIGTERM to the agent is refused (EPERM)" \
      "boot 2: a root shell's write in /var/lib/aegisbpf is refused (EPERM)" \
      "boot 2: systemctl kill -s SIGKILL aegisbpf exit status (PID 1 may kill it)" \
      "boot 2: the killed agent was restarted once by systemd" \
      "boot 2: active again after the kill" \
      "boot 2: self-protection armed after the restart" \
      "boot 2: the rule denies after the kill and restart (EPERM)" \
      "boot 2: the pinned rule keeps denying after the stop (EPERM)" ;;
    policy-not-stored) printf '%s\n' \
      "boot 2: the rule stored before the reboot denies (EPERM)" \
      "boot 2: the rule denies after the kill and restart (EPERM)" \
      "boot 2: the pinned rule keeps denying after the stop (EPERM)" ;;
    *) return 1 ;;
  esac
}

echo "=== vm-systemd: the reboot test"
bash scripts/vm/systemd/run_test.sh --mode normal --out "$out/normal" | tee "$out/normal.log"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out/normal.log" | tail -n1)
if [ -n "$line" ]; then
  passed=$((passed + $(cut -d' ' -f1 <<<"$line"))) failed=$((failed + $(cut -d' ' -f3 <<<"$line")))
else
  echo "vm-systemd: the reboot test printed no result line"; failed=$((failed + 1))
fi

for c in $controls; do
  echo "=== vm-systemd: negative control $c"
  if ! want=$(expected_failures "$c"); then
    echo "vm-systemd control $c: unknown control ... FAILED"; failed=$((failed + 1)); continue
  fi
  bash scripts/vm/systemd/run_test.sh --mode "$c" --out "$out/$c" >"$out/$c.log" 2>&1
  rc=$?
  got=$(sed -n "s/^vm-systemd $c: \(.*\) \.\.\. FAILED.*/\1/p" "$out/$c.log")
  oks=$(grep -c "^vm-systemd $c: .* \.\.\. ok$" "$out/$c.log")
  if [ "$rc" = 1 ] && [ "$got" = "$want" ] && [ "$oks" -gt 0 ]; then
    echo "vm-systemd control $c: reported as a failure by exactly the expected checks ($(wc -l <<<"$want")), $oks others ok ... ok"
    passed=$((passed + 1))
    rm -f "$out/$c/disk.qcow2" # kept by run_test.sh because checks failed, as they had to
  else
    echo "vm-systemd control $c: the broken flow was NOT reported as expected (exit $rc) ... FAILED"
    echo "    checks expected to fail:"; sed 's/^/      /' <<<"$want"
    echo "    checks that failed:"; sed 's/^/      /' <<<"${got:-<none>}"
    echo "    log: $out/$c.log"
    failed=$((failed + 1))
  fi
done
echo "vm-systemd: results in $out"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
