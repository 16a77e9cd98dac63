#!/usr/bin/env bash
# What killed a guest, from its serial console log (scripts/vm/test_vm.sh).
# Usage: crash_kind.sh CONSOLE_LOG
# Prints the first oops block (the Oops/BUG line to the panic line, at most
# 40 lines) on stderr, and on stdout one line naming the crash.
# Exit 0: the crash is the emulator's, the only kind the runner resumes:
#   "Oops: int3" with RIP inside a named kernel text symbol (a breakpoint that
#   text_poke_bp() put into kernel text while live-patching it, hit after the
#   patch completed: TCG's handling of modified code, see docs/vm.md). A BPF
#   program cannot write an int3 into kernel text.
# Exit 1: anything else: a RIP in a JIT image (bpf_prog_*, bpf_trampoline_*)
#   or in memory without a symbol (freed JIT memory is filled with int3),
#   any other oops, a plain panic, no oops found.
set -uo pipefail
log=${1:?usage: crash_kind.sh CONSOLE_LOG}
[ -r "$log" ] || { echo "no console log"; exit 1; }
start=$(grep -n -m1 -E 'Oops|BUG:|general protection fault|Kernel panic' "$log" | cut -d: -f1)
[ -n "$start" ] || { echo "no oops or panic in the console log"; exit 1; }
block=$(tail -n "+$start" "$log" | sed -n '1,40p' | sed '/Kernel panic/q')
printf '%s\n' "$block" >&2
first=$(head -n1 <<<"$block")
if ! grep -q 'Oops: int3' <<<"$first"; then
  echo "not the emulator's breakpoint: ${first#*] }"; exit 1
fi
rip=$(grep -m1 -oE 'RIP: [0-9a-f]{4}:[^ ]+' <<<"$block")
sym=${rip#RIP: *:}
if [ -z "$rip" ]; then echo "Oops: int3 without a RIP line"; exit 1; fi
case "$sym" in
  bpf_prog_*|bpf_trampoline_*|0x*|'') echo "Oops: int3 at $sym (BPF JIT or unnamed memory)"; exit 1 ;;
esac
if ! grep -qE '^[A-Za-z_][A-Za-z0-9_.]*\+0x[0-9a-f]+/0x[0-9a-f]+$' <<<"$sym"; then
  echo "Oops: int3 at $sym (not a kernel text symbol)"; exit 1
fi
echo "Oops: int3 at $sym (a live-patching breakpoint left in kernel text)"
