#!/usr/bin/env bash
# VM test matrix: {6.1, 6.12} x {lsm on, lsm off}. One boot per cell runs ALL
# VM test files of the cell in one `deno test -A` invocation inside the guest.
#
# Usage: scripts/vm/test_vm.sh [--cells "6.1/on 6.12/off ..."] [--jobs N]
#                              [--timeout S] [--out DIR] [-e NAME=VALUE ...] [FILE...]
#   FILE...   test files (default: tests/vm/*_vmtest.ts; also AEGIS_VM_TESTS="a.ts b.ts")
#   --cells   subset of the matrix (default all four; also AEGIS_VM_CELLS)
#   --jobs    cells booted at once (default 1: measured faster on 2 cores, see docs/vm.md)
#   --timeout per-boot timeout in seconds (default 300)
#   --out     results root (default .cache/vm/matrix/<stamp>); one folder per cell
# Prints one line per cell and test, the dmesg scan per cell, and a final line
# "N passed, M failed[, K skipped]". Exit 1 when anything failed.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
deno=$repo/.tools/bin/deno

cells=${AEGIS_VM_CELLS:-"6.1/on 6.1/off 6.12/on 6.12/off"}
jobs=1 timeout=1800 out="" envs=() files=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cells) cells=${2:?}; shift 2 ;;
    --jobs) jobs=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -e) envs+=(-e "${2:?}"); shift 2 ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "test_vm: unknown option $1" >&2; exit 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
if [ ${#files[@]} = 0 ]; then
  if [ -n "${AEGIS_VM_TESTS:-}" ]; then read -ra files <<<"$AEGIS_VM_TESTS"
  else files=(tests/vm/*_vmtest.ts); fi
fi
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "test_vm: no such test file: $f" >&2; exit 2; }
  case "$f" in /*) echo "test_vm: give test files relative to the repository: $f" >&2; exit 2 ;; esac
done
[ -n "$out" ] || out=$repo/.cache/vm/matrix/$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"; out=$(cd "$out" && pwd)

t0=$(date +%s.%N)
# ---- host preparation: kernels + initramfs (cached), type-check and warm the
# Deno cache on the host (the guest sees the host's DENO_DIR through the overlay
# and runs with --no-check).
for c in $cells; do echo "${c%/*}"; done | sort -u | while read -r k; do
  "$here/build_initramfs.sh" "$k" >/dev/null || exit 1
done || { echo "test_vm: kernel/initramfs preparation failed"; echo "0 passed, 1 failed"; exit 1; }
if ! "$deno" check "${files[@]}" >"$out/host-check.log" 2>&1; then
  cat "$out/host-check.log"
  echo "test_vm: deno check of the VM tests failed on the host"
  echo "0 passed, 1 failed"; exit 1
fi

run_cell() { # kernel lsm -> runs one boot, leaves files in $out/<k>-lsm-<l>/
  local k=$1 l=$2 dir=$out/$1-lsm-$2 id attempt
  for attempt in 1 2; do
    # never report a previous run's results as this one's
    rm -rf "$dir"
    mkdir -p "$dir"
    id=$(date +%s%N)-$k-$l
    echo "$id" >"$dir/run_id"
    "$here/run.sh" -q --kernel "$k" --lsm "$l" --timeout "$timeout" --results "$dir" \
      "${envs[@]}" -e "AEGIS_VM_RUN_ID=$id" -- \
      bash scripts/vm/guest_deno_test.sh "${files[@]}" >"$dir/run.log" 2>&1
    # A guest that died before the test command started (TCG under load has
    # been seen to oops in early boot, e.g. "Oops: int3") ran no test: boot
    # once more and say so. A crash after the tests started is reported.
    if [ "$(cat "$dir/status" 2>/dev/null)" != crash ] || [ -f "$dir/.started" ] || [ $attempt = 2 ]; then
      break
    fi
    echo "vm $k/lsm-$l guest died before the tests started; booting again:" >&2
    grep -m3 -E 'Oops|panic|BUG' "$dir/console.log" | sed 's/^/    /' >&2
    cp "$dir/console.log" "$out/$k-lsm-$l.first-boot.console.log" 2>/dev/null
  done
}

report_cell() { # kernel lsm -> prints lines, appends counts to $out/counts
  local k=$1 l=$2 dir=$out/$1-lsm-$2 label status rc p f s cf=0 line
  label=$(printf '%-13s' "$k/lsm-$l")
  status=$(cat "$dir/status" 2>/dev/null || echo crash)
  rc=$(cat "$dir/exit_code" 2>/dev/null || echo none)
  local rep
  rep=$("$deno" run --allow-read "$here/tap_report.ts" "$label" "$dir/deno.tap")
  read -r _ p f s < <(tail -n1 <<<"$rep")
  sed '$d' <<<"$rep"
  case "$status" in
    timeout) echo "vm $label  guest ... FAILED (timed out after ${timeout}s; $dir/console.log)"; cf=$((cf+1)) ;;
    crash) echo "vm $label  guest ... FAILED (crashed/panicked or harness error; $dir/console.log)"
           grep -E 'Kernel panic|BUG:|Oops|HARNESS ERROR' "$dir/console.log" 2>/dev/null | tail -5 | sed 's/^/      /'
           cf=$((cf+1)) ;;
  esac
  if [ -s "$dir/deno.unreported" ]; then # files that failed to load (no TAP output)
    while read -r uf; do
      echo "vm $label  $uf: (file did not load) ... FAILED"; cf=$((cf+1))
    done <"$dir/deno.unreported"
    { if grep -q ERRORS "$dir/deno.diag" 2>/dev/null; then sed -n '/ERRORS/,$p' "$dir/deno.diag"
      else cat "$dir/deno.stderr" "$dir/deno.diag" 2>/dev/null; fi; } |
      grep -v -e '^$' -e 'Stack backtrace' -e '^ *[0-9]*: <unknown>' | head -n 25 | sed 's/^/      /'
  elif [ "$status" = failed ] && [ "$f" = 0 ]; then
    echo "vm $label  deno test ... FAILED (exit $rc without a failing test; stderr below)"
    tail -n 15 "$dir/deno.stderr" 2>/dev/null | sed 's/^/      /'
    cf=$((cf+1))
  elif [ "$status" = failed ] || [ "$f" != 0 ]; then
    tail -n 5 "$dir/deno.stderr" 2>/dev/null | grep -v '^$' | sed 's/^/      /'
  fi
  if [ "$status" = ok ] && [ "$p" = 0 ] && [ "$s" = 0 ]; then
    echo "vm $label  deno test ... FAILED (no test results parsed from $dir/deno.tap)"; cf=$((cf+1))
  fi
  local scanfile=$dir/dmesg.txt note=""
  if [ ! -s "$scanfile" ]; then scanfile=$dir/console.log; note=" (console log only: no dmesg from the guest)"; fi
  local hits
  if hits=$("$here/scan_dmesg.sh" "$scanfile" 2>&1); then
    echo "vm $label  dmesg scan ... ok$note"; p=$((p+1))
  else
    echo "vm $label  dmesg scan ... FAILED"; printf '%s\n' "$hits"; cf=$((cf+1))
  fi
  # writes in the guest must never reach the host (overlay over a read-only 9p)
  if compgen -G "$repo/.cache/vm/overlay-probe-$(cat "$dir/run_id")" >/dev/null; then
    echo "vm $label  host untouched ... FAILED (guest write reached the host)"; cf=$((cf+1))
  fi
  echo "vm $label  cell wall time $(cat "$dir/elapsed" 2>/dev/null || echo '?')s"
  echo "$p $((f+cf)) $s" >>"$out/counts"
}

: >"$out/counts"
declare -a queue=()
for c in $cells; do
  k=${c%/*}; l=${c#*/}
  case "$k/$l" in 6.1/on|6.1/off|6.12/on|6.12/off) queue+=("$k $l") ;;
    *) echo "test_vm: bad cell '$c' (want 6.1|6.12 / on|off)" >&2; exit 2 ;; esac
done
echo "test_vm: ${#queue[@]} cells, ${#files[@]} test files, jobs=$jobs, results in $out"
if [ "$jobs" -le 1 ]; then
  for c in "${queue[@]}"; do run_cell $c; report_cell $c; done
else
  declare -A pids=()
  for c in "${queue[@]}"; do
    while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n; done
    run_cell $c & pids[$c]=$!
  done
  for c in "${queue[@]}"; do wait "${pids[$c]}"; report_cell $c; done
fi

read -r P F S < <(awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}' "$out/counts")
echo "test_vm: matrix wall time $(awk -v s="$t0" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')s"
if [ "$S" -gt 0 ]; then echo "$P passed, $F failed, $S skipped"; else echo "$P passed, $F failed"; fi
[ "$F" = 0 ]
