#!/usr/bin/env bash
# Build (or reuse) the cached base initramfs for one pinned kernel:
#   busybox-static + the virtio/9p/overlay modules (dependency order computed
#   from each module's .modinfo "depends=") + /init (scripts/vm/init.sh).
# Usage: scripts/vm/build_initramfs.sh 6.1|6.12
# Prints three lines: KDIR=<unpacked kernel>  KERNEL=<vmlinuz>  INITRD=<base cpio>
# The per-run part is appended by run.sh as a second cpio archive; this cached
# part only changes when this script, init.sh, busybox or the kernel change.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
series=${1:?usage: build_initramfs.sh 6.1|6.12}

say() { printf 'build_initramfs: %s\n' "$*" >&2; }

line=$("$here/fetch_kernels.sh" "$series")
kdir=${line#* }
kver=$(ls "$kdir/lib/modules")
moddir=$kdir/lib/modules/$kver
kernel=$kdir/boot/vmlinuz-$kver
busybox=$(command -v busybox)

# Modules the harness needs; dependencies are added automatically.
wanted=(virtio_pci 9pnet_virtio 9p overlay)
# Modules NOT loaded at boot but shipped for tests that need them (loop
# devices and disk file systems: tests/vm/filesystems_vmtest.ts). init.sh
# copies them to /run/aegis/modules in the guest; scripts/vm/load_modules.sh
# loads them (dependencies first) on demand, so other boots pay nothing.
# crc32c_generic: the "softdep pre: crc32c" of libcrc32c/ext4/btrfs (the crypto
# API looks it up by name at init; insmod does not follow softdeps).
# virtio_blk (+ ext4): the disk of the systemd VM test (scripts/vm/systemd/stage1.sh).
extra=(loop crc32c_generic ext4 xfs btrfs virtio_blk)

key=$( { cat "$here/build_initramfs.sh" "$here/init.sh"; sha256sum "$busybox"; echo "$kver"; } \
  | sha256sum | cut -c1-16)
out=$kdir/initramfs-$key.cpio

(
  flock 9
  if [ -s "$out" ]; then exit 0; fi
  say "building $out"
  declare -A path=()
  while IFS= read -r f; do
    b=$(basename "$f"); b=${b%.xz}; b=${b%.ko}; b=${b//-/_}
    path[$b]=$f
  done < <(find "$moddir/kernel" -name '*.ko' -o -name '*.ko.xz')
  builtin_has() { grep -qE "/${1//_/[-_]}\.ko$" "$moddir/modules.builtin"; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  deps_of() { # module -> its depends= list (comma separated) from .modinfo
    local f=${path[$1]} ko=$tmp/dep.ko
    case "$f" in *.xz) xz -dc "$f" >"$ko" ;; *) cp "$f" "$ko" ;; esac
    objcopy -O binary --only-section=.modinfo "$ko" "$tmp/modinfo"
    tr '\0' '\n' <"$tmp/modinfo" | sed -n 's/^depends=//p'
  }
  order=()
  declare -A state=()
  visit() { # depth-first topological sort: dependencies first
    local m=$1 d
    [ "${state[$m]:-}" = done ] && return 0
    [ "${state[$m]:-}" = busy ] && { say "dependency cycle at $m"; exit 1; }
    if [ -z "${path[$m]:-}" ]; then
      if builtin_has "$m"; then state[$m]=done; return 0; fi
      say "module $m not found in $moddir (neither .ko nor built in)"; exit 1
    fi
    state[$m]=busy
    local deps; deps=$(deps_of "$m")
    for d in ${deps//,/ }; do visit "$d"; done
    state[$m]=done
    order+=("$m")
  }
  for m in "${wanted[@]}"; do visit "$m"; done
  base=("${order[@]}")
  order=()
  for m in "${extra[@]}"; do visit "$m"; done
  extra_order=("${order[@]}")
  order=("${base[@]}")

  ir=$tmp/root
  mkdir -p "$ir/bin" "$ir/lib/modules" "$ir/aegis"
  cp "$busybox" "$ir/bin/busybox"
  install -m 0755 "$here/init.sh" "$ir/init"
  for m in "${order[@]}"; do
    f=${path[$m]}
    case "$f" in *.xz) xz -dc "$f" >"$ir/lib/modules/$m.ko" ;; *) cp "$f" "$ir/lib/modules/$m.ko" ;; esac
  done
  printf '%s\n' "${order[@]}" >"$ir/modules.list"
  mkdir -p "$ir/lib/modules/extra"
  for m in "${extra_order[@]}"; do
    f=${path[$m]}
    case "$f" in *.xz) xz -dc "$f" >"$ir/lib/modules/extra/$m.ko" ;; *) cp "$f" "$ir/lib/modules/extra/$m.ko" ;; esac
  done
  printf '%s\n' "${extra_order[@]}" >"$ir/lib/modules/extra/modules.list"
  say "modules ($kver): ${order[*]}; on demand: ${extra_order[*]}"
  (cd "$ir" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) >"$out.tmp"
  mv "$out.tmp" "$out"
  # drop stale builds of this kernel
  find "$kdir" -maxdepth 1 -name 'initramfs-*.cpio' ! -name "$(basename "$out")" -delete
) 9>"$kdir/.initramfs.lock"

printf 'KDIR=%s\nKVER=%s\nKERNEL=%s\nINITRD=%s\n' "$kdir" "$kver" "$kernel" "$out"
