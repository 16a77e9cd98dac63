// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* aegis_shim_path(): where the dynamic loader really mapped this shim, so
 * the agent can prove the embedded, hash-checked copy is the one in use.
 * aegis_landlock_abi(): the one kernel fact only a system call reports.
 * aegis_clock_offset_ns(): realtime minus the clock of bpf_ktime_get_ns().
 * aegis_no_new_privs(): set, then read back, the thread group's no_new_privs. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "aegis_internal.h"

int aegis_shim_path(char *buf, uint32_t cap)
{
	Dl_info info;
	size_t len;

	if (!buf || cap == 0)
		return -EINVAL;
	if (!dladdr((void *)aegis_shim_path, &info) || !info.dli_fname)
		return -ENOENT;
	len = strlen(info.dli_fname);
	if (len + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(buf, info.dli_fname, len + 1);
	return (int)len;
}

/* 444 on every architecture (the unified numbers of syscalls added since 5.x) */
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#define AEGIS_LANDLOCK_CREATE_RULESET_VERSION (1U << 0)

int aegis_landlock_abi(void)
{
	long r = syscall(SYS_landlock_create_ruleset, NULL, 0UL,
			 (unsigned long)AEGIS_LANDLOCK_CREATE_RULESET_VERSION);

	if (r < 0)
		return -errno;
	return (int)r;
}

static int64_t aegis_ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000LL + t->tv_nsec;
}

int aegis_clock_offset_ns(int64_t *out)
{
	struct timespec m0, r, m1;
	int64_t best_width = INT64_MAX, best = 0;

	if (!out)
		return -EINVAL;
	for (int i = 0; i < 5; i++) {
		if (clock_gettime(CLOCK_MONOTONIC, &m0) || clock_gettime(CLOCK_REALTIME, &r) ||
		    clock_gettime(CLOCK_MONOTONIC, &m1))
			return -errno;
		int64_t width = aegis_ts_ns(&m1) - aegis_ts_ns(&m0);
		if (width < best_width) {
			best_width = width;
			best = aegis_ts_ns(&r) - (aegis_ts_ns(&m0) + width / 2);
		}
	}
	*out = best;
	return 0;
}

int aegis_no_new_privs(int set)
{
	int r;

	if (set && prctl(PR_SET_NO_NEW_PRIVS, 1UL, 0UL, 0UL, 0UL) < 0)
		return -errno;
	r = prctl(PR_GET_NO_NEW_PRIVS, 0UL, 0UL, 0UL, 0UL);
	return r < 0 ? -errno : r;
}
