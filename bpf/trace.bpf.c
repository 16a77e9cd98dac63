/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * trace.bpf.c — telemetry tracepoints: openat and exec records into
 * aegis_events, gated by aegis_config (checked before reserving). Exec
 * records wake the agent lazily (lib/event.h, "Wakeups"). With
 * AEGIS_CFG_EXEC_ARGV an exec is followed by its argv record (the first
 * AEGIS_ARGV_LEN bytes of the arguments; only the bytes used go to the ring).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "../lib/event.h"

SEC("tp/syscalls/sys_enter_openat")
int aegis_trace_openat(struct trace_event_raw_sys_enter *ctx)
{
	struct aegis_ev_open *ev;

	if (!aegis_trace_wanted())
		return 0;
	ev = aegis_ev_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_OPEN, AEGIS_EV_OPEN_V2);
	aegis_fill_proc(&ev->proc);
	ev->dfd = (__s32)ctx->args[0];
	ev->flags = (__s32)ctx->args[2];
	bpf_probe_read_user_str(ev->path, sizeof(ev->path), (const void *)ctx->args[1]);
	aegis_ev_submit(ev);
	return 0;
}

/* The new image's argv (its mm is in place at sched_process_exec). */
static __always_inline void aegis_trace_argv(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct aegis_ev_exec_argv *av;
	unsigned long start, end;
	__u64 total, n, size;
	__u32 zero = 0;

	av = bpf_map_lookup_elem(&aegis_argv_scratch, &zero);
	if (!av)
		return;
	/* the scratch holds the last record: clear it (clang inlines no memset this
	 * large, so args word by word; volatile: not turned back into a memset call) */
	__builtin_memset(av, 0, __builtin_offsetof(struct aegis_ev_exec_argv, args));
#pragma unroll
	for (int i = 0; i < AEGIS_ARGV_LEN / 8; i++)
		((volatile __u64 *)av->args)[i] = 0;
	aegis_fill_proc(&av->proc);
	start = BPF_CORE_READ(task, mm, arg_start);
	end = BPF_CORE_READ(task, mm, arg_end);
	total = end > start ? end - start : 0;
	av->total = total > 0xffffffffULL ? 0xffffffffU : (__u32)total;
	n = total < AEGIS_ARGV_LEN ? total : AEGIS_ARGV_LEN;
	barrier_var(n);
	if (n > 0 && n <= AEGIS_ARGV_LEN && !bpf_probe_read_user(av->args, n, (void *)start))
		av->len = (__u32)n;
	/* the used part, rounded up to 8 (zeros: args was cleared above) */
	n = av->len;
	size = (__builtin_offsetof(struct aegis_ev_exec_argv, args) + n + 7) & ~7ULL;
	if (size > sizeof(*av))
		size = sizeof(*av);
	barrier_var(size);
	aegis_fill_hdr(&av->hdr, (__u32)size, AEGIS_EV_EXEC_ARGV, AEGIS_EV_EXEC_ARGV_V1);
	if (size >= __builtin_offsetof(struct aegis_ev_exec_argv, args) && size <= sizeof(*av))
		aegis_ev_output_lazy(av, size);
}

SEC("tp/sched/sched_process_exec")
int aegis_trace_exec(void *ctx)
{
	struct aegis_ev_exec *ev;

	if (!aegis_trace_wanted())
		return 0;
	ev = aegis_ev_reserve(sizeof(*ev));
	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_EXEC, AEGIS_EV_EXEC_V2);
	aegis_fill_proc(&ev->proc);
	aegis_ev_submit_lazy(ev);
	if (aegis_config_get(AEGIS_CFG_EXEC_ARGV))
		aegis_trace_argv();
	return 0;
}
