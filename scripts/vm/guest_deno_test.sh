#!/usr/bin/env bash
# Runs INSIDE the guest (via scripts/vm/test_vm.sh -> run.sh), in the repo dir:
# all VM test files of the cell in one `deno test` invocation, TAP to
# /results/deno.tap (parsed on the host by tap_report.ts), JUnit to
# /results/junit.xml, stderr to /results/deno.stderr.
# Deno's TAP reporter drops "uncaught error" reports of files that fail to
# load (the file simply has no "# ./file" header). When that happens, those
# files are run again with the dot reporter into /results/deno.diag so the
# host can show why; the exit status stays that of the first run.
set -uo pipefail
r=${AEGIS_VM_RESULTS:-/results}
deno test -A --no-check --reporter=tap --junit-path="$r/junit.xml" "$@" \
  2>"$r/deno.stderr" | tee "$r/deno.tap"
rc=$?
if [ "$rc" != 0 ]; then
  missing=()
  for f in "$@"; do
    grep -qxF "# ./${f#./}" "$r/deno.tap" || missing+=("$f")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    printf '%s\n' "${missing[@]}" >"$r/deno.unreported"
    deno test -A --no-check --reporter=dot "${missing[@]}" >"$r/deno.diag" 2>&1
  fi
fi
exit "$rc"
