// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* aegis_seccomp_install(): the daemon's system-call allow list
 * (aegis_seccomp_list.h; docs/security.md, "Seccomp") as a seccomp filter on
 * every thread of the process. aegis_seccomp_names(): the list, for the
 * report. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "aegis_internal.h"

#if defined(__x86_64__)
struct aegis_sc {
	const char *name;
	uint32_t nr;
};

#define AEGIS_SC(n) { #n, __NR_##n },
static const struct aegis_sc aegis_sc_table[] = {
#include "aegis_seccomp_list.h"
};
#undef AEGIS_SC
#define AEGIS_SC_COUNT (sizeof(aegis_sc_table) / sizeof(aegis_sc_table[0]))
/* x32 calls are x86_64 numbers with this bit: never ours */
#define AEGIS_X32_BIT 0x40000000U

int aegis_seccomp_names(char *buf, uint32_t cap)
{
	size_t used = 0;

	if (!buf || cap == 0)
		return -EINVAL;
	for (size_t i = 0; i < AEGIS_SC_COUNT; i++) {
		size_t len = strlen(aegis_sc_table[i].name);

		if (used + len + 2 > cap)
			return -ENOSPC;
		memcpy(buf + used, aegis_sc_table[i].name, len);
		used += len;
		buf[used++] = '\n';
	}
	buf[used] = '\0';
	return (int)used;
}

/* The program: wrong architecture or an x32 call → refuse; each listed
 * number → allow (two instructions each: a JEQ that skips the RET when it
 * does not match, so no jump is longer than one); anything else → refuse:
 * ENOSYS (mode 1; never EPERM, which a proof would read as a deny) and a
 * kernel audit record (type=1326), or only the record (mode 2, SECCOMP_RET_LOG).
 * Returns the number of calls allowed, or -errno. */
int aegis_seccomp_install(uint32_t mode)
{
	struct sock_filter prog[7 + 2 * AEGIS_SC_COUNT];
	struct sock_fprog fprog;
	uint32_t refuse, n = 0;
	long r;

	if (mode == 1)
		refuse = SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA);
	else if (mode == 2)
		refuse = SECCOMP_RET_LOG;
	else
		return -EINVAL;
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, arch));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, refuse);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
						 offsetof(struct seccomp_data, nr));
	prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, AEGIS_X32_BIT, 0, 1);
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, refuse);
	for (size_t i = 0; i < AEGIS_SC_COUNT; i++) {
		prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
							 aegis_sc_table[i].nr, 0, 1);
		prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
	}
	prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, refuse);
	fprog.len = (unsigned short)n;
	fprog.filter = prog;
	/* a filter needs no_new_privs (or CAP_SYS_ADMIN): the daemon set it first */
	r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
		    SECCOMP_FILTER_FLAG_TSYNC | SECCOMP_FILTER_FLAG_LOG, &fprog);
	if (r < 0 && errno == EINVAL) /* a kernel before 4.14 has no FLAG_LOG */
		r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &fprog);
	if (r < 0)
		return -errno;
	if (r > 0) /* TSYNC: a thread that could not take the filter */
		return -EBUSY;
	return (int)AEGIS_SC_COUNT;
}
#else
int aegis_seccomp_names(char *buf, uint32_t cap)
{
	(void)buf;
	(void)cap;
	return -ENOTSUP;
}

int aegis_seccomp_install(uint32_t mode)
{
	(void)mode;
	return -ENOTSUP;
}
#endif
