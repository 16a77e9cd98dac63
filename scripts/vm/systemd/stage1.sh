#!/bin/busybox sh
# Stage-1 /init of the systemd VM test (scripts/vm/systemd/run_test.sh): put in
# place of scripts/vm/init.sh by a cpio appended to the cached base initramfs
# (scripts/vm/build_initramfs.sh: busybox, the 9p modules, ext4 and virtio_blk
# on demand). Loads the modules, mounts the virtio disk (the Debian 12 image)
# read-write, the payload (ro) and results (rw) 9p shares inside it, and hands
# over to systemd with switch_root. Runs again on every guest reboot.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "aegis-stage1: [$(cut -d' ' -f1 /proc/uptime 2>/dev/null)] $*"; }
die() {
  say "HARNESS ERROR: $*"
  [ -d /results/.mounted ] && echo "$*" >/results/harness_error
  sync
  poweroff -f
  sleep 5
}

mkdir -p /proc /sys /dev /newroot /results
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

for m in $(cat /modules.list); do
  insmod "/lib/modules/$m.ko" || die "insmod $m failed"
done
# the on-demand modules in dependency order, up to the last one needed
need="virtio_blk ext4"
for m in $(cat /lib/modules/extra/modules.list); do
  [ -d "/sys/module/$m" ] || insmod "/lib/modules/extra/$m.ko" || die "insmod $m failed"
  rest=
  for w in $need; do [ "$w" = "$m" ] || [ -d "/sys/module/$w" ] || rest="$rest $w"; done
  need=$rest
  [ -z "$need" ] && break
done
[ -z "$need" ] || die "modules not shipped in the initramfs:$need"

mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=512000,cache=none results /results \
  || die "cannot mount the results 9p export"
mkdir -p /results/.mounted
# A guest that keeps rebooting (a panic with panic=-1, a reboot loop) stops here.
echo "$(cat /proc/uptime)" >>/results/stage1_boots
boots=$(wc -l </results/stage1_boots)
say "boot $boots"
[ "$boots" -le 3 ] || die "more than 3 boots in one run: a reboot loop"

i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1))
  [ $i -le 100 ] || die "no /dev/vda after 10 s (virtio disk missing?)"
  sleep 0.1
done
mount -t ext4 -o rw /dev/vda /newroot || die "cannot mount /dev/vda (ext4) read-write"
# /sbin/init -> /lib/systemd/systemd: an absolute link, resolved here by hand
init=$(readlink /newroot/sbin/init) || init=/sbin/init
[ -x "/newroot$init" ] || die "no /sbin/init on /dev/vda (or it points to a missing $init)"
say "/dev/vda mounted; mounting the 9p exports in it"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose payload /newroot/aegis/payload \
  || die "cannot mount the payload 9p export"
umount /results
mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=512000,cache=none results /newroot/aegis/results \
  || die "cannot mount the results 9p export in the new root"
umount /proc /sys
umount /dev
say "switch_root to systemd"
exec switch_root /newroot /sbin/init
