/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * hash_verified.h — the cache of verified files (map aegis_hash_verified)
 * that lets the non-sleepable lsm/file_mprotect program answer for a
 * content it cannot hash (docs/engine.md, "mprotect(PROT_EXEC)").
 *
 * Filled by the sleepable exec and mapping programs (exec_hash.bpf.c) for
 * a file they hashed and did not deny, with the lists they checked; read
 * by the mprotect program, and by both hashing programs before they hash
 * (a verified, unchanged file is not hashed again); an entry is deleted by
 * a write-open of the file (file.bpf.c). The key names the
 * content without hashing it: the inode and its ctime and size (every
 * write moves ctime, unless it lands in the same clock tick as the last
 * change: that case is what the write-open deletion and the writer checks
 * below are for). The value is valid only for the policy it was checked
 * against: the live generation and AEGIS_CFG_HASH_EPOCH (bumped by every
 * policy apply), so a new policy makes every older entry a miss.
 *
 * Which inode: the one whose pages the mapping runs, the one the mapping
 * carries (vma->vm_file->f_inode). For a file on overlayfs that is the
 * layer's file (the upper or lower inode), not the overlay inode the mmap
 * hook is given: overlayfs swaps the mapping's file for its layer file
 * (file->private_data, opened with the overlay file) in its mmap. Keying by
 * the layer inode also makes a write to the layer file directly, not
 * through the overlay, a write-open of that inode.
 */
#ifndef AEGIS_LIB_HASH_VERIFIED_H
#define AEGIS_LIB_HASH_VERIFIED_H

#include <bpf/bpf_core_read.h>

#include "inode.h"

extern int LINUX_KERNEL_VERSION __kconfig;

/* include/linux/mount.h: a kernel-internal mount (memfd, SysV shm, pipes) */
#define AEGIS_MNT_INTERNAL 0x4000

/* struct inode's ctime: i_ctime (to 6.5), __i_ctime (6.6 to 6.10),
 * i_ctime_sec / i_ctime_nsec (6.11 on). */
struct inode___ctime_v1 {
	struct timespec64 i_ctime;
} __attribute__((preserve_access_index));

struct inode___ctime_v2 {
	struct timespec64 __i_ctime;
} __attribute__((preserve_access_index));

struct inode___ctime_v3 {
	time64_t i_ctime_sec;
	__u32 i_ctime_nsec;
} __attribute__((preserve_access_index));

/* include/uapi/linux/magic.h */
#define AEGIS_OVERLAYFS_SUPER_MAGIC 0x794c7630

/*
 * The inode a mapping of `file` will carry (see above); a plain pointer, or
 * NULL when it is not known: an overlayfs file keeps its layer file in
 * private_data up to 6.13 (a container struct since), so on later kernels
 * an overlay file is never verified (its mprotect fails closed).
 */
static __always_inline struct inode *aegis_mapped_inode(struct file *file)
{
	struct inode *inode = file->f_inode;
	struct file *real;

	if (inode->i_sb->s_magic != AEGIS_OVERLAYFS_SUPER_MAGIC)
		return inode;
	if (LINUX_KERNEL_VERSION >= KERNEL_VERSION(6, 14, 0))
		return 0;
	real = BPF_CORE_READ(file, private_data);
	return real ? BPF_CORE_READ(real, f_inode) : 0;
}

/* The cache key of `inode` as it is now (probe reads: `inode` may be a
 * plain pointer). */
static __always_inline void aegis_verified_key_of(struct aegis_verified_key *vk,
						  struct inode *inode)
{
	struct aegis_inode_key k = {};

	aegis_inode_key_of_read(&k, inode, 0);
	vk->ino = k.ino;
	vk->dev = k.dev;
	vk->i_generation = BPF_CORE_READ(inode, i_generation);
	vk->size = BPF_CORE_READ(inode, i_size);
	if (bpf_core_field_exists(struct inode___ctime_v3, i_ctime_sec)) {
		struct inode___ctime_v3 *i = (void *)inode;

		vk->ctime_sec = BPF_CORE_READ(i, i_ctime_sec);
		vk->ctime_nsec = BPF_CORE_READ(i, i_ctime_nsec);
	} else if (bpf_core_field_exists(struct inode___ctime_v2, __i_ctime)) {
		struct inode___ctime_v2 *i = (void *)inode;

		vk->ctime_sec = BPF_CORE_READ(i, __i_ctime.tv_sec);
		vk->ctime_nsec = BPF_CORE_READ(i, __i_ctime.tv_nsec);
	} else {
		struct inode___ctime_v1 *i = (void *)inode;

		vk->ctime_sec = BPF_CORE_READ(i, i_ctime.tv_sec);
		vk->ctime_nsec = BPF_CORE_READ(i, i_ctime.tv_nsec);
	}
}

/* Is the file open for writing anywhere (a writable fd or shared mapping)? */
static __always_inline int aegis_has_writer(struct inode *inode)
{
	return BPF_CORE_READ(inode, i_writecount.counter) > 0;
}

/* A write access to `inode`: its content may change within its current
 * ctime, so it is no longer verified. */
static __always_inline void aegis_hash_verified_forget_inode(struct inode *inode)
{
	struct aegis_verified_key vk = {};

	aegis_verified_key_of(&vk, inode);
	bpf_map_delete_elem(&aegis_hash_verified, &vk);
}

/* A write-open of `file` (file.bpf.c lsm/file_open): opening an overlay
 * file opens its layer file too, which comes here with the layer inode. */
static __always_inline void aegis_hash_verified_forget(struct file *file)
{
	aegis_hash_verified_forget_inode(file->f_inode);
}

#endif /* AEGIS_LIB_HASH_VERIFIED_H */
