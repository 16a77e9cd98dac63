/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * fallback.bpf.c — the audit and signal fallbacks for kernels without BPF
 * LSM (docs/posture.md: AUDIT_FALLBACK, ENFORCE_SIGNAL). Tracepoints that share
 * the LSM surfaces' maps and decisions but can only OBSERVE:
 *
 *   tp/syscalls/sys_exit_{openat,openat2,open}  the new fd's file   TP_OPENAT
 *   tp_btf/sched_process_exec                   bprm of the exec    TP_EXECVE
 *   tp/syscalls/sys_enter_connect               fd's socket + addr  TP_CONNECT
 *
 * Why tracepoints and not fentry on security_file_open / _bprm_check /
 * _socket_connect (same arguments as the LSM hooks, in the BTF of 6.1,
 * 6.12 and 6.18): on the kernels this fallback is for, trampoline
 * programs may be refused too — on the test host (6.18) fentry, fexit,
 * fmod_ret and lsm programs all fail to load with EPERM, while tp,
 * raw_tp and tp_btf load. Tracepoints work wherever BPF tracing works.
 *
 * The decision is the LSM surfaces' code: lib/inode.h (aegis_inode_match),
 * exec.bpf.c (aegis_exec_match / aegis_exec_emit: one translation unit,
 * see aegis.bpf.c; this file is included after it) and lib/net.h.
 * Differences from the LSM hooks, all inherent to observing:
 *  - opens are seen after they succeeded (the inode of the installed fd;
 *    an fd closed or replaced by another thread in between is missed);
 *  - exec is seen once, after the point of no return, with the final
 *    binary (a script's interpreter, not the script's inode; deny_comm
 *    still uses the script's name);
 *  - connect is seen at syscall entry: the sockaddr is copied from user
 *    memory (at most AEGIS_SIN6_LEN bytes, as the LSM decoder reads).
 * These programs always return 0. A match emits the usual block record
 * with action AEGIS_ACT_AUDIT, unless AEGIS_CFG_SIGNAL is armed (2, 9 or
 * 15) and the mode enforces (not audit, emergency disable or
 * break-glass): then bpf_send_signal() signals the current process
 * (action INT, KILL or TERM; AEGIS_CNT_SIGNAL_SENT counts it). The
 * syscall itself runs to its end (an O_TRUNC open truncates, a connect's
 * SYN leaves); SIGKILL stops the process before it returns to user space,
 * so it never reads the fd, runs the new image or uses the socket.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/inode.h"
#include "lib/net.h"

/*
 * A rule matched on an observe-only hook: signal the current process when
 * the signal fallback is armed and the mode enforces, else only report.
 * A signal the kernel refused (exiting task, busy irq_work) is reported
 * as AUDIT: the record never claims more than happened. Counts the
 * outcome in the hook's statistics (a signal as a block).
 */
static __always_inline __u8 aegis_fallback_verdict(struct aegis_hook_ctx *hc)
{
	struct aegis_hook_stat *st = hc->st;
	__u64 sig = aegis_config_get(AEGIS_CFG_SIGNAL);
	__u8 action = AEGIS_ACT_AUDIT;

	if (sig && !aegis_config_get(AEGIS_CFG_AUDIT_ONLY) &&
	    !aegis_config_get(AEGIS_CFG_EMERGENCY_DISABLE) &&
	    !aegis_config_get(AEGIS_CFG_BREAK_GLASS))
		action = aegis_signal_action(sig);
	if (action != AEGIS_ACT_AUDIT) {
		if (bpf_send_signal((__u32)sig) == 0)
			aegis_count(AEGIS_CNT_SIGNAL_SENT);
		else
			action = AEGIS_ACT_AUDIT;
	}
	if (st) {
		if (action == AEGIS_ACT_AUDIT)
			st->audits++;
		else
			st->blocks++;
	}
	aegis_hook_latency(hc);
	return action;
}

#define AEGIS_S_IFMT 0170000
#define AEGIS_S_IFSOCK 0140000

/* The current task's struct file for `fd`, or NULL. */
static __always_inline struct file *aegis_fd_file(long fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file *f = 0;
	struct file **fds;

	if (fd < 0 || !fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (!fds || bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]))
		return 0;
	return f;
}

/* An open returned `ret`: decide on the file behind the new fd. */
static __always_inline void aegis_fb_opened(long ret)
{
	struct aegis_inode_key k = {};
	struct aegis_hook_ctx hc;
	struct aegis_rule *r;
	struct file *f;

	if (ret < 0)
		return;
	aegis_hook_enter(&hc, AEGIS_HOOK_TP_OPENAT);
	if (!(hc.flags & AEGIS_POL_FILE_RULES))
		return;
	f = aegis_fd_file(ret);
	if (!f) {
		aegis_hook_allow(&hc);
		return;
	}
	aegis_inode_key_of_read(&k, BPF_CORE_READ(f, f_inode), hc.gen);
	r = aegis_inode_match(&hc, &k);
	if (!r) {
		aegis_hook_allow(&hc);
		return;
	}
	aegis_emit_file_block(&hc, &k, r, aegis_fallback_verdict(&hc));
}

SEC("tp/syscalls/sys_exit_openat")
int aegis_fb_openat(struct trace_event_raw_sys_exit *ctx)
{
	aegis_fb_opened(ctx->ret);
	return 0;
}

SEC("tp/syscalls/sys_exit_openat2")
int aegis_fb_openat2(struct trace_event_raw_sys_exit *ctx)
{
	aegis_fb_opened(ctx->ret);
	return 0;
}

SEC("tp/syscalls/sys_exit_open")
int aegis_fb_open(struct trace_event_raw_sys_exit *ctx)
{
	aegis_fb_opened(ctx->ret);
	return 0;
}

/* After a successful exec: the binary's inode rule, then deny_comm, as in
 * lsm/bprm_check_security. `current` is already the new image. */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(aegis_fb_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	struct aegis_comm_key ck = {};
	struct aegis_inode_key k = {};
	struct aegis_hook_ctx hc;
	struct aegis_rule *r;
	const char *filename;
	int by_comm = 0;
	__u64 flags;

	aegis_hook_enter(&hc, AEGIS_HOOK_TP_EXECVE);
	flags = hc.flags;
	if (!(flags & (AEGIS_POL_FILE_RULES | AEGIS_POL_EXEC_RULES)))
		return 0;
	filename = BPF_CORE_READ(bprm, filename);
	aegis_inode_key_of_read(&k, BPF_CORE_READ(bprm, file, f_inode), hc.gen);
	r = aegis_exec_match(&hc, flags, &k, filename, &ck, &by_comm);
	if (!r || aegis_inode_exempt(&hc, &k)) {
		aegis_hook_allow(&hc);
		return 0;
	}
	aegis_exec_emit(&hc, &k, r, aegis_fallback_verdict(&hc), filename, by_comm ? &ck : 0);
	return 0;
}

/* connect(fd, addr, len): the socket behind fd, the user's sockaddr copied
 * onto the stack (its family's size only), then lib/net.h as
 * lsm/socket_connect does (AF_UNSPEC is a disconnect: not checked). */
SEC("tp/syscalls/sys_enter_connect")
int aegis_fb_connect(struct trace_event_raw_sys_enter *ctx)
{
	struct aegis_net_target t = {};
	__u8 sa[AEGIS_SIN6_LEN] = {};
	const void *usa = (const void *)ctx->args[1];
	int len = (int)ctx->args[2];
	struct aegis_hook_ctx hc;
	struct aegis_rule *r;
	struct socket *sock;
	__u16 family = 0;
	struct file *f;
	__u8 rt = 0;

	if (len < (int)sizeof(family) || bpf_probe_read_user(&family, sizeof(family), usa))
		return 0;
	if (family == AEGIS_AF_INET) {
		if (len < AEGIS_SIN_LEN || bpf_probe_read_user(sa, AEGIS_SIN_LEN, usa))
			return 0;
	} else if (family == AEGIS_AF_INET6) {
		if (len < AEGIS_SIN6_LEN || bpf_probe_read_user(sa, AEGIS_SIN6_LEN, usa))
			return 0;
	} else {
		return 0;
	}
	f = aegis_fd_file((long)ctx->args[0]);
	if (!f || (BPF_CORE_READ(f, f_inode, i_mode) & AEGIS_S_IFMT) != AEGIS_S_IFSOCK)
		return 0;
	sock = BPF_CORE_READ(f, private_data);
	if (!sock || aegis_net_target_of(&t, BPF_CORE_READ(sock, sk, __sk_common.skc_family),
					 aegis_net_proto(BPF_CORE_READ(sock, sk, sk_protocol)), sa,
					 len, AEGIS_DIR_EGRESS, AEGIS_HOOK_SOCKET_CONNECT))
		return 0;
	aegis_hook_enter(&hc, AEGIS_HOOK_TP_CONNECT);
	if (!(hc.flags & AEGIS_POL_NET_RULES))
		return 0;
	if (aegis_cgroup_allowed(hc.gen)) {
		aegis_hook_allow(&hc);
		return 0;
	}
	r = aegis_net_match(&t, hc.gen, hc.flags, &rt);
	if (!r) {
		aegis_hook_allow(&hc);
		return 0;
	}
	aegis_emit_net_block(&hc, &t, r, rt, aegis_fallback_verdict(&hc));
	return 0;
}
