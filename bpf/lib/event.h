/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reserve, fill the common parts of, and submit ring-buffer records. */
#ifndef AEGIS_LIB_EVENT_H
#define AEGIS_LIB_EVENT_H

#include <bpf/bpf_core_read.h>

#include "counters.h"

/* Reserve `size` zeroed bytes in aegis_events; counts a drop on failure. */
static __always_inline void *aegis_ev_reserve(__u32 size)
{
	void *ev = bpf_ringbuf_reserve(&aegis_events, size, 0);

	if (!ev)
		aegis_count(AEGIS_CNT_RINGBUF_DROPS);
	return ev;
}

/*
 * Wakeups. A ring-buffer submit normally wakes the consumer only when it
 * had read everything before this record (adaptive). Telemetry records
 * (exec) are submitted with no wakeup at all: the agent's drain reads the
 * ring at least every 250 ms while it sleeps and every 10 ms while records
 * flow (docs/telemetry.md), so one wakeup serves a batch of execs instead
 * of one per exec; when the ring is a quarter full they wake it at once.
 * Telemetry left unread defeats the adaptive wakeup of the next record, so
 * a block record that follows telemetry (AEGIS_CFG_LAZY_PENDING) forces
 * its wakeup: a denial is read at once.
 */
static __always_inline void aegis_ev_submit(void *ev)
{
	__u32 slot = AEGIS_CFG_LAZY_PENDING;
	__u64 *lazy = bpf_map_lookup_elem(&aegis_config, &slot);
	__u64 flags = 0;

	if (lazy && *lazy) {
		*lazy = 0;
		flags = BPF_RB_FORCE_WAKEUP;
	}
	bpf_ringbuf_submit(ev, flags);
	aegis_count(AEGIS_CNT_EVENTS);
}

/* Submit a telemetry record: see "Wakeups" above. */
static __always_inline void aegis_ev_submit_lazy(void *ev)
{
	__u32 slot = AEGIS_CFG_LAZY_PENDING;
	__u64 *lazy = bpf_map_lookup_elem(&aegis_config, &slot);
	__u64 size = bpf_ringbuf_query(&aegis_events, BPF_RB_RING_SIZE);

	if (bpf_ringbuf_query(&aegis_events, BPF_RB_AVAIL_DATA) > size / 4) {
		bpf_ringbuf_submit(ev, BPF_RB_FORCE_WAKEUP);
	} else {
		if (lazy && !*lazy)
			*lazy = 1;
		bpf_ringbuf_submit(ev, BPF_RB_NO_WAKEUP);
	}
	aegis_count(AEGIS_CNT_EVENTS);
}

/*
 * Copy a record built elsewhere (a per-CPU scratch map) into aegis_events,
 * `size` bytes of it, waking the consumer as aegis_ev_submit_lazy() does;
 * counts a drop when it does not fit.
 */
static __always_inline void aegis_ev_output_lazy(void *rec, __u64 size)
{
	__u32 slot = AEGIS_CFG_LAZY_PENDING;
	__u64 *lazy = bpf_map_lookup_elem(&aegis_config, &slot);
	__u64 ring = bpf_ringbuf_query(&aegis_events, BPF_RB_RING_SIZE);
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&aegis_events, BPF_RB_AVAIL_DATA) + size > ring / 4)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&aegis_events, rec, size, flags)) {
		aegis_count(AEGIS_CNT_RINGBUF_DROPS);
		return;
	}
	if (flags == BPF_RB_NO_WAKEUP && lazy && !*lazy)
		*lazy = 1;
	aegis_count(AEGIS_CNT_EVENTS);
}

static __always_inline void aegis_fill_hdr(struct aegis_ev_hdr *h, __u32 size, __u16 kind,
					   __u16 version)
{
	h->ktime_ns = bpf_ktime_get_ns();
	h->size = size;
	h->kind = kind;
	h->version = version;
}

static __always_inline void aegis_fill_proc(struct aegis_ev_proc *p)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 pid_tgid = bpf_get_current_pid_tgid();

	p->cgid = bpf_get_current_cgroup_id();
	p->start_time = BPF_CORE_READ(task, start_time);
	p->parent_start_time = BPF_CORE_READ(task, real_parent, start_time);
	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	p->ppid = BPF_CORE_READ(task, real_parent, tgid);
	p->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(p->comm, sizeof(p->comm));
}

#endif /* AEGIS_LIB_EVENT_H */
