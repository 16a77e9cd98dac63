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

static __always_inline void aegis_ev_submit(void *ev)
{
	bpf_ringbuf_submit(ev, 0);
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
	p->pid = pid_tgid >> 32;
	p->tid = (__u32)pid_tgid;
	p->ppid = BPF_CORE_READ(task, real_parent, tgid);
	p->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(p->comm, sizeof(p->comm));
}

#endif /* AEGIS_LIB_EVENT_H */
