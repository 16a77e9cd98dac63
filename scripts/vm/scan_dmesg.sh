#!/usr/bin/env bash
# Scan guest kernel logs for warnings/splats. Usage: scan_dmesg.sh FILE...
# Prints every matching line as "  <file>:<line>: <text>".
# scan_dmesg.sh --patterns prints the pattern list.
# Exit 0: clean. Exit 1: at least one hit. Exit 2: a file is missing/unreadable.
# Patterns are case-sensitive extended regexps, one per line below; keep
# tests/vm/scan_dmesg_test.sh in sync (every pattern has a positive fixture).
set -uo pipefail
patterns=(
  'WARNING:'                                   # WARN_ON splats, lockdep "WARNING: possible ..."
  'BUG:'                                       # BUG: KASAN/sleeping in atomic/soft lockup/...
  'kernel BUG at'
  'KASAN:'
  'UBSAN:'
  'possible circular locking'
  'possible recursive locking'
  'INFO: possible'                             # lockdep: possible irq lock inversion, ...
  'INFO: inconsistent lock state'
  'self-detected stall'                        # rcu_sched/rcu_preempt self-detected stall
  'RCU stall'
  'rcu: INFO: rcu_[a-z]+ detected stall'
  'detected stalls on CPUs'
  'INFO: task .* blocked for more than'
  'Oops'
  'Kernel panic'
  'general protection fault'
  # the agent's seccomp filter refused a call (the ERRNO action, code 0x50000:
  # audit records the action without its errno) or logged one (--seccomp log,
  # 0x7ffc0000): ffi/aegis_seccomp_list.h lacks it
  'type=1326 .*code=0x(50000|7ffc0000)'
)
regex=$(printf '%s|' "${patterns[@]}"); regex=${regex%|}
if [ "${1:-}" = --patterns ]; then printf '%s\n' "${patterns[@]}"; exit 0; fi
[ $# -gt 0 ] || { echo "usage: scan_dmesg.sh FILE..." >&2; exit 2; }
rc=0
for f in "$@"; do
  if [ ! -r "$f" ]; then echo "scan_dmesg: cannot read $f" >&2; rc=2; continue; fi
  hits=$(grep -nE -- "$regex" "$f")
  if [ -n "$hits" ]; then
    [ $rc = 0 ] && rc=1
    printf '%s\n' "$hits" | sed "s|^|  $f:|"
  fi
done
exit $rc
