// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* aegis_probe_open(): the rule verification of the enforcement proof
 * (docs/posture.md, "Rule verification"). A child process leaves the
 * agent's cgroup (the agent is exempt from every rule) for the canary
 * cgroup and tries to open each rule's path, so the kernel answers as it
 * would for any workload.
 *
 * What the child may open is limited by design: a path is first opened
 * with O_PATH (no file_open hook runs, nothing is opened for I/O), its
 * type checked with fstat(), and only a regular file or a directory is
 * opened again, for reading, through /proc/self/fd/N, which names the very
 * inode the O_PATH open found (a path swapped meanwhile for a device or a
 * FIFO is never opened). Nothing is read; the descriptor is closed at once.
 *
 * The child runs after fork() in a multi-threaded process: it only makes
 * system calls and writes into a shared anonymous mapping, then _exit()s. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aegis_internal.h"

#define SLOT_HEAD 2
#define SLOT_PER_PATH AEGIS_PROBE_SLOTS

/* "/proc/self/fd/" + decimal fd, without stdio (fork-safe). */
static void fd_path(char *buf, int fd)
{
	static const char pre[] = "/proc/self/fd/";
	char digits[16];
	int n = 0, i;

	memcpy(buf, pre, sizeof(pre) - 1);
	do {
		digits[n++] = (char)('0' + fd % 10);
		fd /= 10;
	} while (fd > 0 && n < (int)sizeof(digits));
	for (i = 0; i < n; i++)
		buf[sizeof(pre) - 1 + i] = digits[n - 1 - i];
	buf[sizeof(pre) - 1 + n] = '\0';
}

static void child(const char *cgroup_procs, const uint8_t *paths, uint32_t len, uint32_t n,
		  int64_t *res)
{
	const char *p = (const char *)paths, *end = (const char *)paths + len;
	char proc[40];
	uint32_t i;
	int cfd;

	cfd = open(cgroup_procs, O_WRONLY | O_CLOEXEC);
	if (cfd < 0 || write(cfd, "0\n", 2) != 2) {
		res[0] = errno ? errno : EIO;
		_exit(0);
	}
	close(cfd);
	res[0] = 0;
	for (i = 0; i < n && p < end; i++) {
		int64_t *r = res + SLOT_HEAD + (size_t)i * SLOT_PER_PATH;
		struct stat st;
		int pfd, ofd;

		r[1] = -1; /* not tried */
		pfd = open(p, O_PATH | O_CLOEXEC);
		if (pfd < 0) {
			r[0] = errno;
		} else if (fstat(pfd, &st) != 0) {
			r[0] = errno;
			close(pfd);
		} else {
			r[0] = 0;
			r[2] = (int64_t)st.st_dev;
			r[3] = (int64_t)st.st_ino;
			r[4] = (int64_t)st.st_mode;
			if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
				fd_path(proc, pfd);
				ofd = open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
				if (ofd < 0) {
					r[1] = errno;
				} else {
					r[1] = 0;
					close(ofd);
				}
			}
			close(pfd);
		}
		res[1] = (int64_t)i + 1;
		p += strnlen(p, (size_t)(end - p)) + 1;
	}
	_exit(0);
}

int aegis_probe_open(const char *cgroup_procs, const uint8_t *paths, uint32_t len, uint32_t n,
		     int64_t *out, uint32_t timeout_ms)
{
	size_t slots, bytes;
	struct timespec nap = { 0, 1000000 }; /* 1 ms */
	uint64_t waited_us = 0;
	int64_t *shared;
	int status, rc = 0;
	pid_t pid, w;

	if (!cgroup_procs || !out || (n > 0 && (!paths || len == 0)) || n > (1u << 20))
		return -EINVAL;
	if (n > 0 && paths[len - 1] != '\0')
		return -EINVAL; /* every path NUL-terminated, the last one too */
	slots = SLOT_HEAD + (size_t)n * SLOT_PER_PATH;
	bytes = slots * sizeof(int64_t);
	shared = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (shared == MAP_FAILED)
		return -errno;
	memset(shared, 0, bytes);
	shared[0] = -1; /* the child never reported */
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		munmap(shared, bytes);
		return rc;
	}
	if (pid == 0)
		child(cgroup_procs, paths, len, n, shared);
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (w < 0 && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (waited_us >= (uint64_t)timeout_ms * 1000) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
				;
			rc = -ETIMEDOUT;
			break;
		}
		nanosleep(&nap, NULL);
		waited_us += 1000;
	}
	memcpy(out, shared, bytes);
	munmap(shared, bytes);
	return rc;
}
