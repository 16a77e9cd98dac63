/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * null.bpf.c — the floor of bench/vm: programs that return 0 and touch
 * nothing, on the hooks `aegisbpf run` attaches by default (every lsm/
 * program of bpf/ but the file surface's lsm/inode_permission, plus the
 * self-protection guards and the exec telemetry tracepoint), and one more
 * on lsm/inode_permission for the `--lsm-hook both` floor.
 * What it costs is what any BPF program on those hooks costs: the BPF LSM
 * trampoline, the call, bpf_stats accounting when it is on. The difference
 * between this and the agent's programs is the agent's own work.
 *
 * The benchmark attaches one null program per program the agent would
 * attach (bench/vm/enforce_bench.ts reads the plan with the agent's own
 * planPrograms), so a hook with two agent programs gets two null programs;
 * it refuses to run if this file lacks one. Built by bench/vm/run.sh with
 * the clang flags build/native.sh uses for bpf/.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define NULL_PROG(sec, name)                                                                       \
	SEC(sec)                                                                                   \
	int name(unsigned long long *ctx)                                                          \
	{                                                                                          \
		return 0;                                                                          \
	}

/* file (lsm/inode_permission only with --lsm-hook inode|both) */
NULL_PROG("lsm/file_open", null_file_open)
NULL_PROG("lsm/inode_permission", null_inode_perm)
NULL_PROG("lsm/inode_copy_up", null_copy_up)
/* exec: two programs on bprm_check_security (exec.bpf.c and protect.bpf.c) */
NULL_PROG("lsm/bprm_check_security", null_bprm_check)
NULL_PROG("lsm/bprm_check_security", null_bprm_check2)
/* exec by content (exec_hash.bpf.c): sleepable, so its floor is sleepable too */
NULL_PROG("lsm.s/bprm_check_security", null_bprm_check_s)
NULL_PROG("lsm.s/mmap_file", null_mmap_file_s)
/* mprotect(PROT_EXEC) of a file mapping (exec_hash.bpf.c): not sleepable */
NULL_PROG("lsm/file_mprotect", null_file_mprotect)
NULL_PROG("lsm/bprm_creds_for_exec", null_bprm_creds)
NULL_PROG("lsm/bprm_committed_creds", null_bprm_commit)
NULL_PROG("lsm/task_alloc", null_task_alloc)
/* kernel */
NULL_PROG("lsm/ptrace_access_check", null_ptrace)
NULL_PROG("lsm/kernel_read_file", null_kread_file)
NULL_PROG("lsm/kernel_load_data", null_kload_data)
NULL_PROG("lsm/bpf", null_bpf)
/* net */
NULL_PROG("lsm/socket_connect", null_sk_connect)
NULL_PROG("lsm/socket_bind", null_sk_bind)
NULL_PROG("lsm/socket_sendmsg", null_sk_sendmsg)
/* self-protection guards (bpf/self.bpf.c: on by default in enforce mode) */
NULL_PROG("lsm/inode_unlink", null_self_unlink)
NULL_PROG("lsm/inode_rmdir", null_self_rmdir)
NULL_PROG("lsm/inode_rename", null_self_rename)
NULL_PROG("lsm/inode_create", null_self_create)
NULL_PROG("lsm/inode_symlink", null_self_symlink)
NULL_PROG("lsm/inode_link", null_self_link)
NULL_PROG("lsm/file_open", null_self_file_open)
NULL_PROG("lsm/path_truncate", null_self_truncate)
NULL_PROG("lsm/bpf_map", null_self_bpf_map)
NULL_PROG("lsm/bpf", null_self_bpf)
NULL_PROG("lsm/inode_permission", null_self_inode_perm)
NULL_PROG("lsm/task_kill", null_self_task_kill)
NULL_PROG("lsm/ptrace_access_check", null_self_ptrace)
NULL_PROG("lsm/sb_umount", null_self_umount)
/* exec telemetry (the daemon loads it: EngineOptions.execEvents) */
NULL_PROG("tp/sched/sched_process_exec", null_trace_exec)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
