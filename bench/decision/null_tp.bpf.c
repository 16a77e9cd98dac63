/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * bench/decision/null_tp.bpf.c — the floor of the host decision benchmark:
 * a program on the same tracepoint as the fallback's file decision
 * (bpf/fallback.bpf.c, aegis_fb_openat) that does nothing.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

SEC("tp/syscalls/sys_exit_openat")
int null_exit_openat(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
