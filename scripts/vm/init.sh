#!/bin/busybox sh
# /init of the aegisbpf VM test initramfs (scripts/vm/build_initramfs.sh).
# Runs as PID 1 in the guest. The per-run part (/aegis/run.env, /aegis/cmd.sh)
# is a second cpio archive appended by scripts/vm/run.sh.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

say() { echo "aegis-vm-init: $*"; }
die() {
  say "HARNESS ERROR: $*"
  [ -d /results/.mounted ] && echo "$*" > /results/harness_error
  dmesg > /results/dmesg.txt 2>/dev/null
  sync
  poweroff -f
  sleep 5
}

mkdir -p /proc /sys /dev /lower /rw /newroot /results
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

for m in $(cat /modules.list); do
  insmod "/lib/modules/$m.ko" || die "insmod $m failed"
done

mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=512000,cache=none results /results \
  || die "cannot mount results 9p export"
mkdir -p /results/.mounted

[ -f /aegis/run.env ] || die "no per-run archive (/aegis/run.env) in the initramfs"
. /aegis/run.env   # AEGIS_REPO, AEGIS_TMPFS_SIZE

mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /lower \
  || die "cannot mount hostroot 9p export"
mount -t tmpfs -o "mode=0755,size=${AEGIS_TMPFS_SIZE:-75%}" tmpfs /rw || die "tmpfs /rw"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay \
  -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work,redirect_dir=off,index=off,metacopy=off,xino=off \
  /newroot || die "cannot mount overlay (9p lower + tmpfs upper)"

n=/newroot
# A repository under /tmp or /run (CI may clone there) would be hidden by the
# guest's own tmpfs mounts below: keep the overlay's view of it and bind it
# back afterwards.
hold_repo=
case "$AEGIS_REPO" in
  /tmp/*|/run/*)
    mkdir -p /repo-hold
    mount -o bind "$n$AEGIS_REPO" /repo-hold || die "cannot hold $AEGIS_REPO"
    hold_repo=1 ;;
esac
mkdir -p $n/proc $n/sys $n/dev $n/tmp $n/run $n/results
mount -t proc proc $n/proc || die "proc"
mount -t sysfs sysfs $n/sys || die "sysfs"
mount -t devtmpfs devtmpfs $n/dev || die "devtmpfs"
mkdir -p $n/dev/pts $n/dev/shm
# what udev/systemd provide on a real system (bash process substitution needs /dev/fd)
ln -sfn /proc/self/fd $n/dev/fd
ln -sfn /proc/self/fd/0 $n/dev/stdin
ln -sfn /proc/self/fd/1 $n/dev/stdout
ln -sfn /proc/self/fd/2 $n/dev/stderr
mount -t devpts devpts $n/dev/pts 2>/dev/null
mount -t tmpfs tmpfs $n/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $n/tmp || die "tmpfs /tmp"
mount -t tmpfs -o mode=0755 tmpfs $n/run || die "tmpfs /run"
mount -t bpf bpf $n/sys/fs/bpf || die "bpffs"
mount -t securityfs securityfs $n/sys/kernel/security || die "securityfs"
mount -t tracefs tracefs $n/sys/kernel/tracing || die "tracefs"
mount -t cgroup2 cgroup2 $n/sys/fs/cgroup || die "cgroup2"
mount -o bind /results $n/results || die "bind /results"
if [ -n "$hold_repo" ]; then
  mkdir -p "$n$AEGIS_REPO"
  mount -o bind /repo-hold "$n$AEGIS_REPO" || die "cannot bind $AEGIS_REPO back"
fi

mkdir -p $n/run/aegis
cp /aegis/cmd.sh $n/run/aegis/cmd.sh
# modules loaded on demand (scripts/vm/load_modules.sh)
cp -r /lib/modules/extra $n/run/aegis/modules || die "cannot copy the on-demand modules"
echo "$AEGIS_REPO" > /results/.started
# loopback up: the agent's HTTP API and network tests use 127.0.0.1 / ::1
chroot $n ip link set lo up || die "cannot bring lo up"
say "running command (repo $AEGIS_REPO)"
chroot $n /bin/bash /run/aegis/cmd.sh
rc=$?
echo "$rc" > /results/exit_code
dmesg > /results/dmesg.txt
sync
poweroff -f
sleep 5
