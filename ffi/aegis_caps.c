// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* aegis_caps_limit(): keep only the capabilities the running daemon needs,
 * on every thread of the process (docs/security.md, "Capabilities").
 *
 * Capability sets belong to a thread, not to a process, and the runtime
 * (V8, tokio) started its threads long before the daemon's code runs. So,
 * as glibc does for setuid(), each thread is asked to change its own sets:
 * a real-time signal whose handler drops the capabilities (PR_CAPBSET_DROP
 * for the bounding set, so an exec cannot bring them back; capset for the
 * effective, permitted and inheritable sets; the ambient set cleared) and
 * counts itself done. Threads created meanwhile inherit from their creator;
 * the listing is repeated until a pass finds no thread left to ask. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "aegis_internal.h"

#define AEGIS_CAPS_MAX_THREADS 4096

static uint64_t caps_keep;
static int caps_done;	  /* threads that ran the handler (atomic) */
static int caps_failed;	  /* the first errno a thread met (atomic) */
static int caps_last_cap; /* the kernel's highest capability number */
static pid_t caps_acked[AEGIS_CAPS_MAX_THREADS]; /* who ran it, in caps_done order */

static int caps_apply(void)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];

	for (int c = 0; c <= caps_last_cap; c++)
		if (!(caps_keep & (1ULL << c)) &&
		    syscall(SYS_prctl, PR_CAPBSET_READ, (unsigned long)c, 0UL, 0UL, 0UL) == 1 &&
		    syscall(SYS_prctl, PR_CAPBSET_DROP, (unsigned long)c, 0UL, 0UL, 0UL) < 0)
			return errno;
	if (syscall(SYS_prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0UL, 0UL, 0UL) < 0 &&
	    errno != EINVAL) /* EINVAL: a kernel without ambient capabilities */
		return errno;
	if (syscall(SYS_capget, &h, d) < 0)
		return errno;
	d[0].effective &= (uint32_t)caps_keep;
	d[0].permitted &= (uint32_t)caps_keep;
	d[1].effective &= (uint32_t)(caps_keep >> 32);
	d[1].permitted &= (uint32_t)(caps_keep >> 32);
	d[0].inheritable = d[1].inheritable = 0;
	if (syscall(SYS_capset, &h, d) < 0)
		return errno;
	return 0;
}

static void caps_handler(int sig)
{
	int saved = errno, e;

	(void)sig;
	e = caps_apply();
	if (e)
		__atomic_compare_exchange_n(&caps_failed, &(int){ 0 }, e, 0, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST);
	{
		int i = __atomic_fetch_add(&caps_done, 1, __ATOMIC_SEQ_CST);

		if (i < AEGIS_CAPS_MAX_THREADS)
			__atomic_store_n(&caps_acked[i], (pid_t)syscall(SYS_gettid), __ATOMIC_SEQ_CST);
	}
	errno = saved;
}

static int read_last_cap(void)
{
	char buf[16] = "";
	int fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return CAP_LAST_CAP;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	return n > 0 ? atoi(buf) : CAP_LAST_CAP;
}

/* a thread asked that still exists and never ran the handler */
static int unanswered(const pid_t *asked, int nasked, pid_t self)
{
	int done = __atomic_load_n(&caps_done, __ATOMIC_SEQ_CST);
	char path[64];

	for (int i = 0; i < nasked; i++) {
		int ran = asked[i] == self;

		for (int j = 0; j < done && j < AEGIS_CAPS_MAX_THREADS && !ran; j++)
			ran = __atomic_load_n(&caps_acked[j], __ATOMIC_SEQ_CST) == asked[i];
		snprintf(path, sizeof(path), "/proc/self/task/%d", (int)asked[i]);
		if (!ran && access(path, F_OK) == 0)
			return 1;
	}
	return 0;
}

int aegis_caps_limit(uint64_t keep, uint32_t *threads_out)
{
	static pid_t asked[AEGIS_CAPS_MAX_THREADS];
	struct sigaction sa, old;
	struct timespec nap = { 0, 1000000 }; /* 1 ms */
	pid_t self = (pid_t)syscall(SYS_gettid), pid = getpid();
	int nasked = 0, sent = 0, sig = SIGRTMAX - 2, rc = 0, fresh;

	caps_keep = keep;
	caps_last_cap = read_last_cap();
	if (caps_last_cap > 63)
		return -EOVERFLOW;
	__atomic_store_n(&caps_done, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&caps_failed, 0, __ATOMIC_SEQ_CST);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = caps_handler;
	sa.sa_flags = SA_RESTART;
	sigfillset(&sa.sa_mask);
	if (sigaction(sig, &sa, &old) < 0)
		return -errno;
	/* this thread first: PR_CAPBSET_DROP needs CAP_SETPCAP, which every
	 * thread still has until it drops it itself */
	rc = caps_apply();
	if (rc) {
		rc = -rc;
		goto out;
	}
	asked[nasked++] = self;
	do {
		DIR *d = opendir("/proc/self/task");
		struct dirent *e;

		if (!d) {
			rc = -errno;
			goto out;
		}
		fresh = 0;
		while ((e = readdir(d))) {
			pid_t tid = (pid_t)atoi(e->d_name);
			int seen = 0;

			if (tid <= 0)
				continue;
			for (int i = 0; i < nasked && !seen; i++)
				seen = asked[i] == tid;
			if (seen)
				continue;
			if (nasked == AEGIS_CAPS_MAX_THREADS) {
				closedir(d);
				rc = -E2BIG;
				goto out;
			}
			asked[nasked++] = tid;
			fresh++;
			if (syscall(SYS_tgkill, pid, tid, sig) == 0)
				sent++;
			else if (errno != ESRCH) { /* ESRCH: it ended meanwhile */
				closedir(d);
				rc = -errno;
				goto out;
			}
		}
		closedir(d);
		/* wait for the handlers (a thread blocking the signal never runs it) */
		for (int ms = 0; __atomic_load_n(&caps_done, __ATOMIC_SEQ_CST) < sent; ms++) {
			if (ms >= 2000) {
				rc = unanswered(asked, nasked, self) ? -ETIMEDOUT : 0;
				if (rc)
					goto out;
				break; /* the silent ones ended before their signal ran */
			}
			nanosleep(&nap, NULL);
		}
	} while (fresh > 0);
	if (__atomic_load_n(&caps_failed, __ATOMIC_SEQ_CST))
		rc = -__atomic_load_n(&caps_failed, __ATOMIC_SEQ_CST);
	if (threads_out)
		*threads_out = (uint32_t)nasked;
out:
	/* the old action back only when no signal of ours can still arrive (an
	 * RT signal's default action ends the process) */
	if (__atomic_load_n(&caps_done, __ATOMIC_SEQ_CST) >= sent)
		sigaction(sig, &old, NULL);
	return rc;
}
