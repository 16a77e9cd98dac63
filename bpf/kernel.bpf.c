/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * kernel.bpf.c — kernel-surface enforcement, one policy switch each (no
 * rule map: the record's rule_id is 0):
 *  - deny_ptrace (AEGIS_POL_DENY_PTRACE): lsm/ptrace_access_check denies
 *    attach-mode access (PTRACE_ATTACH/SEIZE, /proc/PID/mem, process_vm_*)
 *    to another process. Read-mode checks (/proc/PID/{stat,environ,...},
 *    PTRACE_MODE_READ) are never denied. The kernel answers access to its
 *    own thread group before calling the hook.
 *  - deny_module_load (AEGIS_POL_DENY_MODULE): lsm/kernel_read_file with
 *    READING_MODULE (finit_module) and lsm/kernel_load_data with
 *    LOADING_MODULE (init_module). Both run before the module is read.
 *  - deny_bpf (AEGIS_POL_DENY_BPF): lsm/bpf denies every bpf() command.
 * A deny here never sends a signal (run --enforce-signal; docs/engine.md).
 * The agent's own cgroup and globally allowed cgroups are never denied (the
 * agent must keep using bpf()); the survival allowlist is by inode and does
 * not apply here. Records: AEGIS_EV_KERNEL_BLOCK.
 *
 * Hook signatures, identical in the BTF of Debian 6.1 and 6.12 (each BPF
 * program gets the previous programs' verdict as a last `ret` argument):
 *   int bpf_lsm_ptrace_access_check(struct task_struct *child, unsigned int mode)
 *   int bpf_lsm_kernel_read_file(struct file *file, enum kernel_read_file_id id,
 *                                bool contents)
 *   int bpf_lsm_kernel_load_data(enum kernel_load_data_id id, bool contents)
 *   int bpf_lsm_bpf(int cmd, union bpf_attr *attr, unsigned int size)
 * (Later kernels add `bool kernel` to the bpf hook, which moves `ret`; this
 * object targets 6.1 and 6.12.)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/decide.h"
#include "lib/event.h"

/* include/linux/ptrace.h (a #define, not in BTF). */
#define AEGIS_PTRACE_MODE_ATTACH 0x02

static __always_inline void aegis_emit_kernel_block(struct aegis_hook_ctx *hc, __u8 action,
						    __u8 rule_type, __u32 target_pid,
						    __u32 detail)
{
	struct aegis_ev_kernel_block *ev = aegis_ev_reserve(sizeof(*ev));

	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_KERNEL_BLOCK, AEGIS_EV_KERNEL_BLOCK_V2);
	aegis_fill_proc(&ev->proc);
	ev->target_pid = target_pid;
	ev->detail = detail;
	ev->action = action;
	ev->hook = (__u8)hc->hook;
	ev->rule_type = rule_type;
	aegis_ev_submit(ev);
}

/*
 * The shared decision: the policy switch `pol` of the live generation is
 * on and the caller is not allowlisted → block (or audit) with a record.
 * 0 to allow, -EPERM to deny.
 */
static __always_inline int aegis_kernel_decide(__u32 hook, __u64 pol, __u8 rule_type,
					       __u32 target_pid, __u32 detail)
{
	struct aegis_hook_ctx hc;
	__u8 action;

	aegis_hook_enter(&hc, hook);
	if (!(hc.flags & pol))
		return 0;
	if (aegis_cgroup_allowed(hc.gen))
		return aegis_hook_allow(&hc);
	action = aegis_verdict_quiet(&hc);
	aegis_emit_kernel_block(&hc, action, rule_type, target_pid, detail);
	return aegis_action_rc(action);
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(aegis_ptrace_access_check, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!(mode & AEGIS_PTRACE_MODE_ATTACH))
		return 0;
	return aegis_kernel_decide(AEGIS_HOOK_PTRACE, AEGIS_POL_DENY_PTRACE, AEGIS_RT_PTRACE,
				   BPF_CORE_READ(child, tgid), mode);
}

SEC("lsm/kernel_read_file")
int BPF_PROG(aegis_kernel_read_file, struct file *file, enum kernel_read_file_id id,
	     bool contents, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (id != READING_MODULE)
		return 0;
	return aegis_kernel_decide(AEGIS_HOOK_KERNEL_READ_FILE, AEGIS_POL_DENY_MODULE,
				   AEGIS_RT_MODULE, 0, (__u32)id);
}

SEC("lsm/kernel_load_data")
int BPF_PROG(aegis_kernel_load_data, enum kernel_load_data_id id, bool contents, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (id != LOADING_MODULE)
		return 0;
	return aegis_kernel_decide(AEGIS_HOOK_KERNEL_LOAD_DATA, AEGIS_POL_DENY_MODULE,
				   AEGIS_RT_MODULE, 0, (__u32)id);
}

SEC("lsm/bpf")
int BPF_PROG(aegis_bpf, int cmd, union bpf_attr *attr, unsigned int size, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	return aegis_kernel_decide(AEGIS_HOOK_BPF, AEGIS_POL_DENY_BPF, AEGIS_RT_BPF, 0,
				   (__u32)cmd);
}
