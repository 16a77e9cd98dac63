#!/bin/sh
# The systemd VM test inside the guest (run by aegis-vmtest.service on every
# boot; scripts/vm/systemd/run_test.sh puts it in the payload share).
#   boot 1: aegisbpf install --bundle (the real install code path), enable +
#           start the unit, apply a deny policy, check it, reboot.
#   boot 2: record what the boot alone gave: unit state, readiness, the deny.
# It records facts (KEY=VALUE in /aegis/results/bootN.env) and decides nothing:
# the host checks them (run_test.sh). MODE (payload file "mode"):
#   normal              as above
#   not-enabled         negative control: the unit is started, never enabled
#   policy-not-stored   negative control: the stored policy is deleted before the reboot
# The unit as installed (`aegisbpf run`: self-protection is the default):
# both boots record what a root shell outside the agent can do to it (signal
# it, write its state directory) and, at the end of boot 2, what
# `systemctl stop` (PID 1's SIGTERM) does: the unit stops cleanly, the guards
# are disarmed, the pinned rule keeps denying. Before the stop, a crash
# (`systemctl kill -s SIGKILL`): the unit restarts and the guards are armed.
P=/aegis/payload R=/aegis/results
mode=$(cat $P/mode 2>/dev/null || echo normal)
state=/var/lib/aegis-vmtest
mkdir -p $state
boot=$(( $(cat $state/boot 2>/dev/null || echo 0) + 1 ))
echo $boot >$state/boot
sync
out=$R/boot$boot.env
: >"$out"
fact() { echo "$1=$2" >>"$out"; echo "aegis-vmtest: boot $boot: $1=$2"; }
secret=/srv/aegis-vmtest/secret.txt
bin=/usr/local/bin/aegisbpf
prop() { systemctl show -p "$2" --value "$1"; }
# cat of the denied file: "denied" (EPERM), "readable", or the error text
# self_protection.armed in the agent's report: true, false or "none" (no report)
armed() {
  $bin capabilities --json 2>/dev/null | tr -d ' \n' | grep -o '"self_protection":{[^}]*}' \
    | grep -o '"armed":[a-z]*' | cut -d: -f2 | grep . || echo none
}
# "ok", "denied" (EPERM) or the error text of a command run as a root shell
try_cmd() {
  if err=$("$@" 2>&1 >/dev/null); then echo ok
  else case "$err" in *"Operation not permitted"*) echo denied ;; *) echo "error:$err" | tr ' \n' '__' ;; esac
  fi
}
# the tampering a root shell outside the agent tries (boot N): facts tamper_*
tamper_facts() {
  fact armed "$(armed)"
  pid=$(prop aegisbpf.service MainPID)
  if [ "${pid:-0}" -gt 0 ]; then fact tamper_kill "$(try_cmd kill -TERM "$pid")"
  else fact tamper_kill "no-main-pid"; fi
  fact tamper_state_write "$(try_cmd touch /var/lib/aegisbpf/vmtest-tamper)"
}
try_read() {
  if err=$(cat "$secret" 2>&1 >/dev/null); then echo readable
  else case "$err" in *"Operation not permitted"*) echo denied ;; *) echo "error:$err" | tr ' \n' '__' ;; esac
  fi
}
timed() { # name cmd... -> fact name_rc and name_s; output in bootN.name.log
  name=$1
  shift
  t0=$(cut -d' ' -f1 /proc/uptime)
  "$@" >$R/boot$boot.$name.log 2>&1
  rc=$?
  t1=$(cut -d' ' -f1 /proc/uptime)
  fact "${name}_rc" $rc
  fact "${name}_s" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')"
  return $rc
}
ready_facts() {
  fact active "$(systemctl is-active aegisbpf.service)"
  fact enabled "$(systemctl is-enabled aegisbpf.service 2>&1 | head -n1)"
  fact result "$(prop aegisbpf.service Result)"
  fact n_restarts "$(prop aegisbpf.service NRestarts)"
  fact exec_start_us "$(prop aegisbpf.service ExecMainStartTimestampMonotonic)"
  fact ready_us "$(prop aegisbpf.service ActiveEnterTimestampMonotonic)"
  fact userspace_us "$(systemctl show -p UserspaceTimestampMonotonic --value)"
  fact status_text "$(prop aegisbpf.service StatusText | tr ' ' '_')"
}
collect() {
  journalctl -b --no-pager -u aegisbpf.service >$R/boot$boot.agent.journal 2>&1
  journalctl -b --no-pager -p warning >$R/boot$boot.warnings.journal 2>&1
  systemd-analyze blame --no-pager >$R/boot$boot.blame 2>&1
}

fact mode "$mode"
fact uptime_at_driver "$(cut -d' ' -f1 /proc/uptime)"
fact kernel "$(uname -r)"
fact lsm "$(cat /sys/kernel/security/lsm)"
fact pid1 "$(cat /proc/1/comm)"

if [ $boot = 1 ]; then
  mkdir -p "$(dirname $secret)"
  echo "top secret" >$secret
  fact read_before "$(try_read)"
  # The agent from the payload: the Deno runtime and the bundle made on the
  # host, installed by the agent's own install command (docs/install.md).
  timed install $P/deno run --quiet --no-prompt --cached-only --allow-all $P/aegisbpf.js \
    install --bundle $P/aegisbpf.js
  fact unit_execstart "$(grep '^ExecStart=' /etc/systemd/system/aegisbpf.service)"
  fact mode_keys "$(stat -c %a /etc/aegisbpf/keys)"
  fact mode_state "$(stat -c %a /var/lib/aegisbpf)"
  systemctl daemon-reload
  fact unit_execstart_effective "$(prop aegisbpf.service ExecStart | grep -o 'argv\[\]=[^;]*' | sed 's/ *$//' | tr ' ' '_')"
  if [ "$mode" = not-enabled ]; then
    timed start systemctl start aegisbpf.service
  else
    timed start systemctl enable --now aegisbpf.service
  fi
  ready_facts
  timed health $bin health --require-enforce
  # the operator's policy file lives outside /etc/aegisbpf: with the guards
  # armed only the agent's executable writes there (docs/security.md)
  fact config_write "$(try_cmd touch /etc/aegisbpf/policy/vmtest.policy)"
  printf 'version=1\n\n[deny_path]\n%s\n' "$secret" >/srv/aegis-vmtest/vmtest.policy
  timed apply $bin policy apply /srv/aegis-vmtest/vmtest.policy
  fact read_after_apply "$(try_read)"
  fact stored "$(ls /var/lib/aegisbpf | tr '\n' ',')"
  tamper_facts
  # three refusals within a minute (the config write, the signal, the state
  # write): the posture is DEGRADED (TAMPER_ATTEMPTS) at the next 1 s check
  sleep 2
  $bin health --require-enforce >$R/boot$boot.health_tamper.log 2>&1
  fact health_after_tamper_rc $?
  fact tamper_reason "$(journalctl -b --no-pager -u aegisbpf.service | grep -o 'DEGRADED (TAMPER_ATTEMPTS)' | head -n1 | tr ' ' '_')"
  if [ "$mode" = policy-not-stored ]; then
    # the guards refuse a root shell's rm while the agent runs: stop it first
    systemctl stop aegisbpf.service
    rm -f /var/lib/aegisbpf/policy.applied /var/lib/aegisbpf/policy.sha256 /var/lib/aegisbpf/policy.prev
    fact stored_after_removal "$(ls /var/lib/aegisbpf | tr '\n' ',')"
  fi
  collect
  fact reboot_at "$(cut -d' ' -f1 /proc/uptime)"
  echo done >>"$out"
  sync
  systemctl reboot
  exit 0
fi

# boot 2 (and later): nothing done by hand before these lines
ready_facts
timed health $bin health --require-enforce
fact read_after_reboot "$(try_read)"
tamper_facts
# a crash: PID 1 SIGKILLs the unit (PID 1's signals are allowed); Restart=
# starts the agent again, which re-adopts the pins and the guards, still armed
n0=$(prop aegisbpf.service NRestarts)
i=0
if [ "$(systemctl is-active aegisbpf.service)" = active ]; then
  systemctl kill -s SIGKILL aegisbpf.service
  fact kill_rc $?
else
  fact kill_rc not-active
  i=240
fi
while [ $i -lt 240 ]; do
  [ "$(prop aegisbpf.service NRestarts)" -gt "$n0" ] && [ "$(systemctl is-active aegisbpf.service)" = active ] && break
  sleep 0.5
  i=$((i + 1))
done
fact restarts_after_kill $(($(prop aegisbpf.service NRestarts) - n0))
fact active_after_kill "$(systemctl is-active aegisbpf.service)"
fact armed_after_kill "$(armed)"
fact read_after_kill "$(try_read)"
# the supervisor's stop: PID 1 signals the agent (allowed), the agent disarms
timed stop systemctl stop aegisbpf.service
fact active_after_stop "$(systemctl is-active aegisbpf.service)"
fact result_after_stop "$(prop aegisbpf.service Result)"
fact read_after_stop "$(try_read)"
fact state_write_after_stop "$(try_cmd touch /var/lib/aegisbpf/vmtest-after-stop)"
collect
echo done >>"$out"
sync
systemctl poweroff
