# shellcheck shell=bash
# Sourced by the scripts that boot a QEMU guest (scripts/vm/run.sh,
# scripts/vm/systemd/run_test.sh): one guest per core, machine-wide.
#
# A TCG guest with one vCPU keeps one host core busy. The VM test tiers may
# run side by side (scripts/test.sh), each with guests of its own; without a
# shared limit three or four guests would share two cores, every guest would
# slow down, and the tests' waits would stretch. vm_slot_acquire blocks until
# one of AEGIS_VM_SLOTS lock files (default: the number of cores) is free and
# holds it on a file descriptor that the guest's QEMU inherits: the slot is
# free again when the guest and its caller are gone, whatever way they end.
# Waiting for a slot is not counted in a guest's --timeout (docs/vm.md).

vm_slot_acquire() { # -> holds a slot; sets AEGIS_VM_SLOT_WAITED (seconds)
  local dir=${AEGIS_VM_SLOT_DIR:-/tmp/aegis-vm-slots} n=${AEGIS_VM_SLOTS:-$(nproc)} i t0=$SECONDS
  mkdir -p "$dir"
  [ "$n" -ge 1 ] 2>/dev/null || n=1
  while :; do
    for ((i = 0; i < n; i++)); do
      exec {AEGIS_VM_SLOT_FD}>"$dir/slot$i"
      if flock -n "$AEGIS_VM_SLOT_FD"; then
        AEGIS_VM_SLOT_WAITED=$((SECONDS - t0))
        return 0
      fi
      exec {AEGIS_VM_SLOT_FD}>&-
    done
    sleep 2
  done
}
