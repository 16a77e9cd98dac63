/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * trace.bpf.c — telemetry tracepoints: openat and exec records into
 * aegis_events, gated by aegis_config (checked before reserving). Exec
 * records wake the agent lazily (lib/event.h, "Wakeups").
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
	return 0;
}
