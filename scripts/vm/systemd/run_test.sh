#!/usr/bin/env bash
# systemd VM test (issue 18, item 3): boot a Debian 12 root file system with
# systemd as PID 1 on the pinned 6.12 kernel (BPF LSM on), install the agent
# with `aegisbpf install --bundle`, enable it, apply a deny policy, reboot, and
# check that after the reboot -- with no step by anyone -- the unit is active,
# READY was reached, health --require-enforce holds and the rule denies.
#
# Usage: scripts/vm/systemd/run_test.sh [--mode normal|not-enabled|policy-not-stored]
#                                       [--timeout S] [--out DIR]
#   --mode     normal (default), or a negative control that must FAIL these checks:
#              not-enabled (the unit is started, never enabled), policy-not-stored
#              (the stored policy is deleted before the reboot)
#   --timeout  whole-guest timeout in seconds, both boots (default 900)
#   --out      results folder (default .cache/vm/systemd/runs/<stamp>-<mode>)
# One QEMU guest (TCG, -smp 1); the guest reboots inside the same QEMU process
# (no -no-reboot), so the disk overlay carries over, as on a real machine.
# Prints one line per check and "N passed, M failed"; exit 1 if any failed.
# Results: console.log (host-time stamped), results/boot{1,2}.env (the guest's
# facts), each command's output and the agent's journal per boot, timings.txt,
# and disk.qcow2 (the guest's disk) when a check failed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
cd "$repo"
deno=$repo/.tools/bin/deno
mode=normal timeout=900 out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=${2:?}; shift 2 ;;
    --timeout) timeout=${2:?}; shift 2 ;;
    --out) out=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_test: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case "$mode" in normal|not-enabled|policy-not-stored) ;; *) echo "run_test: --mode must be normal, not-enabled or policy-not-stored" >&2; exit 2 ;; esac
[[ "$timeout" =~ ^[0-9]+$ ]] || { echo "run_test: --timeout wants seconds" >&2; exit 2; }
say() { printf 'vm-systemd: %s\n' "$*"; }
fail_setup() { say "$*"; echo "0 passed, 1 failed"; exit 1; }

t0=$(date +%s.%N)
since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}'; }
[ -x "$deno" ] || fail_setup "no deno at $deno (scripts/setup.sh)"
[ -f dist/gen/embedded.ts ] || fail_setup "not built (bash build/build.sh)"

# ---- host preparation (kernel, initramfs and root image are cached)
eval "$("$repo/scripts/vm/build_initramfs.sh" 6.12)" || fail_setup "kernel/initramfs preparation failed"
ti=$(date +%s.%N)
img_line=$("$here/build_image.sh") || fail_setup "root image build failed (scripts/vm/systemd/build_image.sh)"
IMAGE=${img_line#IMAGE=}
image_s=$(since "$ti")

[ -n "$out" ] || out=$repo/.cache/vm/systemd/runs/$(date +%Y%m%d-%H%M%S)-$mode
rm -rf "$out"; mkdir -p "$out/payload" "$out/results"
out=$(cd "$out" && pwd)
res=$out/results pay=$out/payload
# The payload the guest installs from: the runtime that runs this checkout and
# src/main.ts bundled into one module (made here: the guest has no network).
"$deno" bundle --quiet --platform deno src/main.ts -o "$pay/aegisbpf.js" >"$out/bundle.log" 2>&1 \
  || { cat "$out/bundle.log"; fail_setup "deno bundle of src/main.ts failed"; }
cp -l "$deno" "$pay/deno" 2>/dev/null || cp "$deno" "$pay/deno"
install -m 0755 "$here/guest.sh" "$pay/guest.sh"
echo "$mode" >"$pay/mode"
qemu-img create -q -f qcow2 -F raw -b "$IMAGE" "$out/disk.qcow2" || fail_setup "qemu-img create of the disk overlay failed"
# The stage-1 init replaces the base initramfs's /init (a later cpio entry wins).
mkdir -p "$out/cpio"
install -m 0755 "$here/stage1.sh" "$out/cpio/init"
(cd "$out/cpio" && echo init | cpio --quiet -o -H newc -R 0:0) >"$out/stage1.cpio"
cat "$INITRD" "$out/stage1.cpio" >"$out/initrd.cpio"
rm -rf "$out/cpio" "$out/stage1.cpio"

# ---- the guest: two boots in one QEMU process (the guest reboots, then powers off)
lsm_list=lockdown,capability,landlock,yama,apparmor,bpf
say "booting $KVER with systemd as PID 1 (mode $mode, timeout ${timeout}s; results $out)"
# Each console line gets the host's seconds since QEMU started ("  12.345| "):
# the guest's clocks cannot time its own reboot (see "Times" below).
stamp() {
  local l d s0=${EPOCHREALTIME//[!0-9]/}
  while IFS= read -r l; do
    d=$((${EPOCHREALTIME//[!0-9]/} - s0))
    printf '%4d.%03d| %s\n' $((d / 1000000)) $((d / 1000 % 1000)) "$l"
  done
}
# one guest per core, machine-wide (scripts/vm/slot.sh); the wait is not in the timeout
# shellcheck source=scripts/vm/slot.sh
. "$here/../slot.sh"
vm_slot_acquire
[ "$AEGIS_VM_SLOT_WAITED" = 0 ] || say "waited ${AEGIS_VM_SLOT_WAITED}s for a free core (scripts/vm/slot.sh)"
tq=$(date +%s.%N)
set +e
timeout --kill-after=5 "$timeout" qemu-system-x86_64 \
  -accel tcg -cpu max -m 2048 -smp 1 -nographic -nic none \
  -kernel "$KERNEL" -initrd "$out/initrd.cpio" \
  -append "console=ttyS0 quiet panic=-1 systemd.show_status=1 lsm=$lsm_list" \
  -drive "file=$out/disk.qcow2,if=virtio,format=qcow2" \
  -virtfs "local,path=$pay,mount_tag=payload,security_model=none,readonly=on" \
  -virtfs "local,path=$res,mount_tag=results,security_model=none" \
  </dev/null 2>&1 | sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g' -e 's/\x1b[0-9A-Za-z]//g' | stamp >"$out/console.log"
qrc=${PIPESTATUS[0]}
set -e
guest_s=$(since "$tq")
rm -f "$out/initrd.cpio" "$pay/deno"

# ---- checks on what the guest recorded
passed=0 failed=0
get() { # boot key -> value ("" if absent)
  local f=$res/boot$1.env
  [ -f "$f" ] && sed -n "s/^$2=//p" "$f" | tail -n1 || true
}
check() { # description expected actual
  if [ "$2" = "$3" ]; then passed=$((passed + 1)); echo "vm-systemd $mode: $1 ... ok"
  else failed=$((failed + 1)); echo "vm-systemd $mode: $1 ... FAILED (expected '$2', got '${3:-<nothing>}')"; fi
}
check_cmd() { # description command...
  if "${@:2}"; then passed=$((passed + 1)); echo "vm-systemd $mode: $1 ... ok"
  else failed=$((failed + 1)); echo "vm-systemd $mode: $1 ... FAILED"; fi
}
done_boot() { [ -f "$res/boot$1.env" ] && grep -qx done "$res/boot$1.env"; }
case "$qrc" in
  0) ;;
  124|137) say "the guest TIMED OUT after ${timeout}s (qemu killed)" ;;
  *) say "qemu exited $qrc" ;;
esac
if [ -s "$res/harness_error" ]; then say "HARNESS ERROR in the stage-1 init: $(cat "$res/harness_error")"; fi
check "stage-1 init: no harness error" "" "$(cat "$res/harness_error" 2>/dev/null)"
check "qemu ended by itself (the guest powered off after the second boot)" 0 "$qrc"
check_cmd "boot 1 ran to its end (driver reached the reboot)" done_boot 1
check "boot 1: PID 1 is systemd" systemd "$(get 1 pid1)"
check "boot 1: bpf is an active LSM" yes "$(case ",$(get 1 lsm)," in *,bpf,*) echo yes ;; *) echo no ;; esac)"
check "boot 1: aegisbpf install --bundle exit status" 0 "$(get 1 install_rc)"
check "boot 1: the installed unit runs the installed wrapper" "ExecStart=/usr/local/bin/aegisbpf run" "$(get 1 unit_execstart)"
check "boot 1: /etc/aegisbpf/keys mode" 700 "$(get 1 mode_keys)"
check "boot 1: /var/lib/aegisbpf mode" 700 "$(get 1 mode_state)"
check "boot 1: systemctl (enable --now | start) aegisbpf exit status" 0 "$(get 1 start_rc)"
check "boot 1: aegisbpf.service active after start" active "$(get 1 active)"
check "boot 1: health --require-enforce exit status" 0 "$(get 1 health_rc)"
check "boot 1: the file is readable before the policy" readable "$(get 1 read_before)"
check "boot 1: policy apply exit status" 0 "$(get 1 apply_rc)"
check "boot 1: the applied rule denies (EPERM)" denied "$(get 1 read_after_apply)"
check "boot 1: the unit runs the agent with no option (self-protection is the default)" \
  "argv[]=/usr/local/bin/aegisbpf_run" "$(get 1 unit_execstart_effective)"
check "boot 1: self-protection armed" true "$(get 1 armed)"
check "boot 1: a root shell's SIGTERM to the agent is refused (EPERM)" denied "$(get 1 tamper_kill)"
check "boot 1: a root shell's new file in /etc/aegisbpf/policy is refused (EPERM)" denied "$(get 1 config_write)"
check "boot 1: a root shell's write in /var/lib/aegisbpf is refused (EPERM)" denied "$(get 1 tamper_state_write)"
check "boot 1: after three refusals health --require-enforce fails, the log says TAMPER_ATTEMPTS" \
  "1 DEGRADED_(TAMPER_ATTEMPTS)" \
  "$(get 1 health_after_tamper_rc) $(get 1 tamper_reason)"
check_cmd "boot 2 ran to its end (driver reached the poweroff)" done_boot 2
check "boot 2: PID 1 is systemd" systemd "$(get 2 pid1)"
check "boot 2: aegisbpf.service is enabled" enabled "$(get 2 enabled)"
check "boot 2: aegisbpf.service is active, by the boot alone" active "$(get 2 active)"
check "boot 2: no restart was needed" 0 "$(get 2 n_restarts)"
check "boot 2: READY reached (ActiveEnterTimestampMonotonic set)" yes \
  "$(v=$(get 2 ready_us); [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] && echo yes || echo "no ($v)")"
check "boot 2: health --require-enforce exit status" 0 "$(get 2 health_rc)"
check "boot 2: the rule stored before the reboot denies (EPERM)" denied "$(get 2 read_after_reboot)"
check "boot 2: self-protection armed again after the reboot" true "$(get 2 armed)"
check "boot 2: a root shell's SIGTERM to the agent is refused (EPERM)" denied "$(get 2 tamper_kill)"
check "boot 2: a root shell's write in /var/lib/aegisbpf is refused (EPERM)" denied "$(get 2 tamper_state_write)"
check "boot 2: systemctl kill -s SIGKILL aegisbpf exit status (PID 1 may kill it)" 0 "$(get 2 kill_rc)"
check "boot 2: the killed agent was restarted once by systemd" 1 "$(get 2 restarts_after_kill)"
check "boot 2: active again after the kill" active "$(get 2 active_after_kill)"
check "boot 2: self-protection armed after the restart" true "$(get 2 armed_after_kill)"
check "boot 2: the rule denies after the kill and restart (EPERM)" denied "$(get 2 read_after_kill)"
check "boot 2: systemctl stop aegisbpf exit status (PID 1's SIGTERM is allowed)" 0 "$(get 2 stop_rc)"
check "boot 2: the unit is inactive after the stop" inactive "$(get 2 active_after_stop)"
check "boot 2: the stop was clean (Result=success)" success "$(get 2 result_after_stop)"
check "boot 2: the pinned rule keeps denying after the stop (EPERM)" denied "$(get 2 read_after_stop)"
check "boot 2: the guards are disarmed after the stop (a write in /var/lib/aegisbpf works)" ok \
  "$(get 2 state_write_after_stop)"

# Times. Within a boot, systemd's monotonic timestamps (since that boot's
# kernel start): agent exec, READY (ActiveEnterTimestampMonotonic), systemd's
# own start. Across the reboot, the host's stamps on the console lines: the
# driver's last line before `systemctl reboot`, the firmware banner of the
# second boot (the reset), and systemd's "Started aegisbpf.service" (printed
# at READY for Type=notify).
span() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a ~ /^[0-9]+$/ && b ~ /^[0-9]+$/ && a > 0 && b > 0) printf "%.1f", (b-a)/1e6; else print "none" }'; }
ready_after_systemd1=$(span "$(get 1 userspace_us)" "$(get 1 ready_us)")
ready_after_exec1=$(span "$(get 1 exec_start_us)" "$(get 1 ready_us)")
ready_after_systemd2=$(span "$(get 2 userspace_us)" "$(get 2 ready_us)")
ready_after_exec2=$(span "$(get 2 exec_start_us)" "$(get 2 ready_us)")
at() { # console pattern, nth match -> host seconds since QEMU started ("" if absent)
  grep -a -- "$1" "$out/console.log" | sed -n "${2}p" | cut -d'|' -f1 | tr -d ' '
}
t_reboot=$(at 'boot 1: reboot_at=' 1) t_reset=$(at 'SeaBIOS' 2) t_ready2=$(at 'Started aegisbpf.service' 2)
diff_s() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a != "" && b != "") printf "%.1f", b-a; else print "none" }'; }
reboot_to_ready=$(diff_s "$t_reboot" "$t_ready2") reset_to_ready=$(diff_s "$t_reset" "$t_ready2")
{
  echo "mode=$mode"
  echo "image_prepare_s=$image_s"
  echo "guest_s=$guest_s"
  echo "boot1_install_s=$(get 1 install_s) boot1_start_cmd_s=$(get 1 start_s) boot1_apply_s=$(get 1 apply_s)"
  echo "boot2_stop_s=$(get 2 stop_s)"
  echo "boot1_exec_to_ready_s=$ready_after_exec1 boot1_systemd_to_ready_s=$ready_after_systemd1"
  echo "boot2_kernel_to_ready_s=$(span 1 "$(get 2 ready_us)") boot2_exec_to_ready_s=$ready_after_exec2 boot2_systemd_to_ready_s=$ready_after_systemd2"
  echo "reboot_to_ready_s=$reboot_to_ready reset_to_ready_s=$reset_to_ready"
  echo "total_s=$(since "$t0")"
} >"$out/timings.txt"
say "times: image ${image_s}s (cached after the first build); guest ${guest_s}s for both boots;" \
  "boot 1 (started by hand): exec -> READY ${ready_after_exec1}s;" \
  "boot 2 (by itself): reset -> READY ${reset_to_ready}s, kernel start -> READY $(span 1 "$(get 2 ready_us)")s," \
  "systemd start -> READY ${ready_after_systemd2}s" \
  "(exec -> READY ${ready_after_exec2}s), 'systemctl reboot' -> READY ${reboot_to_ready}s; total $(since "$t0")s"
if [ "$failed" -gt 0 ]; then
  say "console: $out/console.log; facts: $res/boot*.env; agent journals: $res/boot*.agent.journal"
  grep -E 'aegis-stage1|aegis-vmtest|Kernel panic|Failed to start|FAILED|HARNESS' "$out/console.log" | tail -n 25 | sed 's/^/    /' || true
fi
# the guest's disk (~300 MB) is kept for a post-mortem only
[ "$failed" -gt 0 ] || rm -f "$out/disk.qcow2"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
