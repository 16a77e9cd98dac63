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
  if [ "$mode" = not-enabled ]; then
    timed start systemctl start aegisbpf.service
  else
    timed start systemctl enable --now aegisbpf.service
  fi
  ready_facts
  timed health $bin health --require-enforce
  printf 'version=1\n\n[deny_path]\n%s\n' "$secret" >/etc/aegisbpf/policy/vmtest.policy
  timed apply $bin policy apply /etc/aegisbpf/policy/vmtest.policy
  fact read_after_apply "$(try_read)"
  fact stored "$(ls /var/lib/aegisbpf | tr '\n' ',')"
  if [ "$mode" = policy-not-stored ]; then
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
collect
echo done >>"$out"
sync
systemctl poweroff
