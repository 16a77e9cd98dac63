/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Counter and config helpers over aegis_counters / aegis_config. */
#ifndef AEGIS_LIB_COUNTERS_H
#define AEGIS_LIB_COUNTERS_H

#include "aegis_maps.h"

static __always_inline void aegis_count(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&aegis_counters, &slot);

	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u64 aegis_config_get(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&aegis_config, &slot);

	return v ? *v : 0;
}

/* Should a trace event be emitted for the current task? Cheap: two array
 * lookups, before anything is reserved. */
static __always_inline int aegis_trace_wanted(void)
{
	__u64 tgid;

	if (!aegis_config_get(AEGIS_CFG_TRACE_ENABLE))
		return 0;
	tgid = aegis_config_get(AEGIS_CFG_TRACE_TGID);
	return !tgid || tgid == (bpf_get_current_pid_tgid() >> 32);
}

#endif /* AEGIS_LIB_COUNTERS_H */
