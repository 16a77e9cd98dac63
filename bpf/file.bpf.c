/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * file.bpf.c — lsm/file_open: deny opening inodes listed in
 * aegis_deny_inode. The loader disables this program's autoload on kernels
 * without BPF LSM; the rest of the object loads without it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "../lib/counters.h"

#define AEGIS_EPERM 1

SEC("lsm/file_open")
int BPF_PROG(aegis_file_open, struct file *file, int ret)
{
	struct aegis_inode_key key = {};

	if (ret != 0)
		return ret; /* an earlier program already decided */
	key.ino = BPF_CORE_READ(file, f_inode, i_ino);
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	if (!bpf_map_lookup_elem(&aegis_deny_inode, &key))
		return 0;
	aegis_count(AEGIS_CNT_FILE_DENY);
	return -AEGIS_EPERM;
}
