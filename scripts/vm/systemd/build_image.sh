#!/usr/bin/env bash
# Build (or reuse) the cached Debian 12 root file system image with systemd as
# PID 1 for the systemd VM test (scripts/vm/systemd/run_test.sh, docs/vm.md):
#   mmdebstrap --variant=essential + the packages below (from deb.debian.org,
#   mmdebstrap's default mirror), trimmed of what only slows a TCG boot,
#   then `mkfs.ext4 -d` (no loop mount) into
#   .cache/vm/systemd/rootfs-<key>.ext4      (key: this script, the package list, guest units)
# The image is never written by a test: each run boots a qcow2 overlay of it.
# Usage: scripts/vm/systemd/build_image.sh      prints IMAGE=<path>
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../.." && pwd)
say() { printf 'build_image: %s\n' "$*" >&2; }

suite=bookworm
# systemd + systemd-sysv: systemd as /sbin/init. Nothing else: the essential set brings
# sh, coreutils, util-linux (mount), and zlib, the one library the agent's shim links.
packages=systemd,systemd-sysv
size=1200M

command -v mmdebstrap >/dev/null || { say "mmdebstrap is not installed (build/apt-packages.txt; run scripts/setup.sh)"; exit 1; }
command -v mkfs.ext4 >/dev/null || { say "mkfs.ext4 is not installed (e2fsprogs)"; exit 1; }

key=$( { cat "$here/build_image.sh" "$here/aegis-vmtest.service"; echo "$suite $packages $size"; } \
  | sha256sum | cut -c1-16)
dir=$repo/.cache/vm/systemd
out=$dir/rootfs-$key.ext4
mkdir -p "$dir"

(
  flock 9
  if [ -s "$out" ]; then exit 0; fi
  t0=$(date +%s)
  tmp=$(mktemp -d "$dir/.build.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  say "building $out (mmdebstrap $suite: $packages)"
  if ! mmdebstrap --quiet --variant=essential --include="$packages" \
      --dpkgopt='path-exclude=/usr/share/{doc,man,locale,info}/*' \
      "$suite" "$tmp/root" >"$tmp/mmdebstrap.log" 2>&1; then
    tail -n 30 "$tmp/mmdebstrap.log" >&2
    say "mmdebstrap failed (is Debian's mirror reachable? apt-get update?)"
    exit 1
  fi
  r=$tmp/root
  [ -x "$r/sbin/init" ] || { say "no /sbin/init in the tree (systemd-sysv missing?)"; exit 1; }
  echo aegis-vm >"$r/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 aegis-vm\n' >"$r/etc/hosts"
  # Not a first boot (ConditionFirstBoot units, machine-id commit): a fixed id.
  echo 0123456789abcdef0123456789abcdef >"$r/etc/machine-id"
  # The root file system is mounted by the stage-1 init (scripts/vm/systemd/stage1.sh);
  # an fstab line would make systemd wait for a device unit that, without udev, never comes.
  : >"$r/etc/fstab"
  # Units that only cost boot time here: no terminal logins, no timers.
  for u in getty@tty1.service serial-getty@ttyS0.service getty.target console-getty.service \
           systemd-logind.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
           e2scrub_all.timer fstrim.timer man-db.timer dpkg-db-backup.timer systemd-tmpfiles-clean.timer; do
    ln -sfn /dev/null "$r/etc/systemd/system/$u"
  done
  # The test's own unit: runs the payload's guest script once the boot is done.
  install -m 0644 "$here/aegis-vmtest.service" "$r/etc/systemd/system/aegis-vmtest.service"
  mkdir -p "$r/etc/systemd/system/multi-user.target.wants"
  ln -sfn /etc/systemd/system/aegis-vmtest.service "$r/etc/systemd/system/multi-user.target.wants/aegis-vmtest.service"
  # Mount points for the 9p shares the stage-1 init mounts (payload ro, results rw).
  mkdir -p "$r/aegis/payload" "$r/aegis/results"
  rm -rf "$r/var/cache/apt/archives/"*.deb "$r/var/lib/apt/lists/"* 2>/dev/null || true
  # Inode tables and journal zeroed now, not by the guest's ext4lazyinit thread under TCG.
  mkfs.ext4 -q -F -L aegis-root -E lazy_itable_init=0,lazy_journal_init=0 -d "$r" "$tmp/rootfs.ext4" "$size" >"$tmp/mkfs.log" 2>&1 \
    || { cat "$tmp/mkfs.log" >&2; say "mkfs.ext4 -d failed"; exit 1; }
  mv "$tmp/rootfs.ext4" "$out"
  find "$dir" -maxdepth 1 -name 'rootfs-*.ext4' ! -name "$(basename "$out")" -delete
  say "built $out in $(( $(date +%s) - t0 )) s ($(du -m --apparent-size "$out" | cut -f1) MiB apparent, $(du -m "$out" | cut -f1) MiB used)"
) 9>"$dir/.lock"

printf 'IMAGE=%s\n' "$out"
