/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * verified.h — the per-process "verified" state (protect_path and
 * protect_connect, docs/policy.md) and the protect decision built on it.
 *
 * A task is verified when the file it executes (and, for a script, every
 * interpreter in the chain: binfmt_script and binfmt_misc re-run
 * bprm_check_security with bprm->file set to the interpreter) is
 *   - owned by uid 0 (global kuid, so a user namespace cannot fake it),
 *   - not group- or other-writable,
 *   - not on overlayfs (neither the inode's nor the mount's superblock),
 *   - reached from the task's root through /usr, /bin, /sbin, /lib or
 *     /lib64 (the first path component below the task's root),
 * and the new program's argv carries no inline code (-c / -e, see
 * aegis_argv_inline in protect.bpf.c). bpf/protect.bpf.c computes it at
 * exec and copies it to children at fork; a task with no state (started
 * before the programs were attached, or storage allocation failed) counts
 * as unverified.
 *
 * The path test walks dentry->d_parent (bounded) and crosses mounts
 * through mount->mnt_mountpoint / mnt_parent, so a separate /usr
 * partition works. Conservative: a mount that shows only a subtree of its
 * file system (a bind mount of a directory) or a walk that ends anywhere
 * but the task's root (another mount namespace, a file outside a chroot)
 * is not verified.
 */
#ifndef AEGIS_LIB_VERIFIED_H
#define AEGIS_LIB_VERIFIED_H

#include <bpf/bpf_core_read.h>

#include "aegis_maps.h"

#define AEGIS_OVERLAYFS_MAGIC 0x794c7630
#define AEGIS_S_IWGRP_IWOTH 0022
#define AEGIS_VERIFY_STEPS 40 /* path components plus mount crossings */

static __always_inline struct aegis_task_state *aegis_task_state_of(struct task_struct *t,
								    int create)
{
	return bpf_task_storage_get(&aegis_task_state, t, 0,
				    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
}

/* Is the current task verified? No state: no. */
static __always_inline int aegis_task_verified(void)
{
	struct aegis_task_state *st = aegis_task_state_of(bpf_get_current_task_btf(), 0);

	return st && (st->flags & AEGIS_TASK_VERIFIED);
}

/*
 * Does a matched rule apply to the current task? A deny flag always does
 * (deny beats protect); a protect-only rule only to an unverified task.
 * Used by the file (lib/inode.h) and network (lib/net.h) decisions.
 */
static __always_inline int aegis_rule_enforced(struct aegis_rule *r)
{
	if (r->flags & AEGIS_RULE_DENY)
		return 1;
	if (r->flags & AEGIS_RULE_PROTECT)
		return !aegis_task_verified();
	return 0;
}

/* Is the name of `d` one of usr, bin, sbin, lib, lib64? */
static __always_inline int aegis_top_name_ok(struct dentry *d)
{
	char n[8] = {};

	if (bpf_probe_read_kernel_str(n, sizeof(n), BPF_CORE_READ(d, d_name.name)) <= 0)
		return 0;
	if (n[0] == 'u' && n[1] == 's' && n[2] == 'r' && n[3] == 0)
		return 1;
	if (n[0] == 'b' && n[1] == 'i' && n[2] == 'n' && n[3] == 0)
		return 1;
	if (n[0] == 's' && n[1] == 'b' && n[2] == 'i' && n[3] == 'n' && n[4] == 0)
		return 1;
	if (n[0] == 'l' && n[1] == 'i' && n[2] == 'b') {
		if (n[3] == 0)
			return 1;
		return n[3] == '6' && n[4] == '4' && n[5] == 0;
	}
	return 0;
}

/* struct mount of a struct vfsmount (container_of, CO-RE offset). */
static __always_inline struct mount *aegis_real_mount(struct vfsmount *vm)
{
	return (struct mount *)((void *)vm - bpf_core_field_offset(struct mount, mnt));
}

/*
 * Is `file` reached from the current task's root through one of the
 * trusted top-level directories? Walks up from the file's dentry, crossing
 * into the parent mount at each mount root, and remembers the last
 * component stepped out of before the task's root.
 */
static __always_inline int aegis_trusted_location(struct file *file)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct dentry *root_d = BPF_CORE_READ(task, fs, root.dentry);
	struct vfsmount *root_m = BPF_CORE_READ(task, fs, root.mnt);
	struct vfsmount *vm = BPF_CORE_READ(file, f_path.mnt);
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	struct dentry *top = 0;
	int i;

	for (i = 0; i < AEGIS_VERIFY_STEPS; i++) {
		struct dentry *mnt_root = BPF_CORE_READ(vm, mnt_root);
		struct dentry *parent;

		if (d == root_d && vm == root_m)
			return top && aegis_top_name_ok(top);
		if (d == mnt_root) {
			struct mount *m = aegis_real_mount(vm);
			struct mount *pm = BPF_CORE_READ(m, mnt_parent);

			if (pm == m) /* the namespace's root, not the task's */
				return 0;
			if (mnt_root != BPF_CORE_READ(vm, mnt_sb, s_root))
				return 0; /* a bind mount of a subtree */
			d = BPF_CORE_READ(m, mnt_mountpoint);
			vm = (struct vfsmount *)((void *)pm + bpf_core_field_offset(struct mount, mnt));
			continue;
		}
		parent = BPF_CORE_READ(d, d_parent);
		if (parent == d) /* a file system root that is not its mount's root */
			return 0;
		top = d;
		d = parent;
	}
	return 0;
}

/* The protect_path file checks for one executable (or interpreter). */
static __always_inline int aegis_file_verified(struct file *file)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	__u16 mode = BPF_CORE_READ(inode, i_mode);

	if (!inode || BPF_CORE_READ(inode, i_uid.val) != 0)
		return 0;
	if (mode & AEGIS_S_IWGRP_IWOTH)
		return 0;
	if (BPF_CORE_READ(inode, i_sb, s_magic) == AEGIS_OVERLAYFS_MAGIC ||
	    BPF_CORE_READ(file, f_path.mnt, mnt_sb, s_magic) == AEGIS_OVERLAYFS_MAGIC)
		return 0;
	return aegis_trusted_location(file);
}

#endif /* AEGIS_LIB_VERIFIED_H */
