#!/bin/bash
# Inside a VM guest: load kernel modules shipped in the initramfs but not
# loaded at boot (scripts/vm/build_initramfs.sh `extra`), e.g.
#   bash scripts/vm/load_modules.sh loop ext4 xfs btrfs
# Loads every shipped module in dependency order up to and including the
# last one named; already loaded (or built-in) modules are skipped.
set -euo pipefail
dir=/run/aegis/modules
[ -f "$dir/modules.list" ] || { echo "load_modules: no $dir/modules.list (not in a VM guest?)" >&2; exit 2; }
declare -A want=()
for m in "$@"; do
  grep -qx "$m" "$dir/modules.list" || { echo "load_modules: $m is not shipped (add it to extra in scripts/vm/build_initramfs.sh)" >&2; exit 2; }
  want[$m]=1
done
need=()
while IFS= read -r m; do
  need+=("$m")
  unset 'want[$m]'
  [ ${#want[@]} -eq 0 ] && break
done <"$dir/modules.list"
for m in "${need[@]}"; do
  [ -d "/sys/module/$m" ] && continue
  busybox insmod "$dir/$m.ko"
done
