/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bench/decision/decide_fexit.bpf.c — lsm/file_open's decision on a host
 * without BPF LSM: the same code (bpf/lib/inode.h, direct BTF loads from a
 * `struct file *` argument) run from fexit/vfs_open, beside a program on
 * the same attach point that does nothing. The maps are this object's own
 * (bpf/include/aegis_maps.h), filled by bench/decision/decision_bench.ts.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/inode.h"

SEC("fexit/vfs_open")
int BPF_PROG(bench_decide, const struct path *path, struct file *file, int ret)
{
	struct aegis_hook_ctx hc;

	if (ret != 0)
		return 0;
	aegis_hook_enter(&hc, AEGIS_HOOK_FILE_OPEN);
	aegis_inode_decide(&hc, file->f_inode);
	return 0;
}

SEC("fexit/vfs_open")
int BPF_PROG(bench_null, const struct path *path, struct file *file, int ret)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
