#!/usr/bin/env bash
# Host-side unit test of scripts/vm/scan_dmesg.sh on fixture text.
#   every splat line in fixtures/dmesg_splats.txt must be reported (one hit per line),
#   real clean boot logs (6.1, 6.12) and look-alike lines must give no hit,
#   a missing file is an error (exit 2), not "clean".
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
scan=$here/../../scripts/vm/scan_dmesg.sh
fx=$here/fixtures
pass=0 fail=0
ok() { pass=$((pass+1)); echo "ok   $*"; }
bad() { fail=$((fail+1)); echo "FAIL $*"; }

out=$("$scan" "$fx/dmesg_splats.txt"); rc=$?
[ $rc = 1 ] && ok "splats: exit 1" || bad "splats: exit $rc (want 1)"
# every non-empty fixture line except the "cut here" marker must be a hit
while IFS= read -r line; do
  case "$line" in *"cut here"*|"") continue ;; esac
  if grep -qF -- "$line" <<<"$out"; then ok "hit: ${line:15:60}"; else bad "missed: $line"; fi
done <"$fx/dmesg_splats.txt"
if grep -qF 'cut here' <<<"$out"; then bad "cut-here marker matched"; else ok "cut-here marker not a hit"; fi

# each pattern on its own matches at least one splat fixture line (no dead pattern)
while IFS= read -r pat; do
  if grep -qE -- "$pat" "$fx/dmesg_splats.txt"; then ok "pattern live: $pat"; else bad "pattern matches no fixture: $pat"; fi
done < <("$scan" --patterns)

for f in dmesg_clean_6.1.txt dmesg_clean_6.12.txt dmesg_lookalikes.txt; do
  out=$("$scan" "$fx/$f"); rc=$?
  if [ $rc = 0 ] && [ -z "$out" ]; then ok "clean: $f"; else bad "false positive in $f (exit $rc): $out"; fi
done

"$scan" "$fx/does_not_exist.txt" >/dev/null 2>&1; rc=$?
[ $rc = 2 ] && ok "missing file: exit 2" || bad "missing file: exit $rc (want 2)"

# several files: a hit in any one of them fails the scan and names that file
out=$("$scan" "$fx/dmesg_clean_6.1.txt" "$fx/dmesg_splats.txt"); rc=$?
if [ $rc = 1 ] && grep -q 'dmesg_splats.txt:' <<<"$out" && ! grep -q 'dmesg_clean' <<<"$out"; then
  ok "multi-file scan names the dirty file"
else bad "multi-file scan (exit $rc)"; fi

echo "$pass passed, $fail failed"
[ $fail = 0 ]
