// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* aegis_probe_open(): the rule verification of the enforcement proof
 * (docs/posture.md, "Rule verification"); aegis_probe_connect(): the
 * network surface's canary connect. A child process leaves the
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
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/bpf.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/socket.h>
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

/* In the child: move into the cgroup (res[0] = 0, else its errno and _exit). */
static void enter_cgroup(const char *cgroup_procs, int64_t *res)
{
	int cfd = open(cgroup_procs, O_WRONLY | O_CLOEXEC);

	if (cfd < 0 || write(cfd, "0\n", 2) != 2) {
		res[0] = errno ? errno : EIO;
		_exit(0);
	}
	close(cfd);
	res[0] = 0;
}

struct open_args {
	const uint8_t *paths;
	uint32_t len, n;
};

static void open_body(const void *arg, int64_t *res)
{
	const struct open_args *a = arg;
	const char *p = (const char *)a->paths, *end = (const char *)a->paths + a->len;
	char proc[40];
	uint32_t i;

	for (i = 0; i < a->n && p < end; i++) {
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
}

struct connect_args {
	struct sockaddr_in sin;
};

/* One non-blocking TCP connect: the LSM hook answers before the protocol
 * does, so a deny is EPERM at once; an allowed connect to a loopback port
 * nobody listens on is refused (or in progress) without leaving the host. */
static void connect_body(const void *arg, int64_t *res)
{
	const struct connect_args *a = arg;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		res[1] = -(int64_t)errno; /* no socket: not a connect answer */
		return;
	}
	res[1] = connect(fd, (const struct sockaddr *)&a->sin, sizeof(a->sin)) == 0 ? 0 : errno;
	close(fd);
}

/* The kernel-surface attempts, each harmless when let through:
 * - ptrace: PTRACE_ATTACH to a grandchild of our own that only sleeps
 *   (killed at once either way; it also dies with the probe, and exits by
 *   itself after 10 s);
 * - module: init_module() of 64 zero bytes (not an ELF image: refused with
 *   ENOEXEC after the LSM hook if the hook lets it through);
 * - bpf: BPF_MAP_CREATE with an all-zero attribute (map type 0: EINVAL
 *   after the hook). res[1 + i] is the errno of attempt i (0 succeeded,
 *   -1 not tried). */
static void kernel_body(const void *arg, int64_t *res)
{
	uint32_t ops = *(const uint32_t *)arg;

	if (ops & AEGIS_PROBE_PTRACE) {
		struct timespec t = { 0, 100000000 };
		pid_t parent = getpid();
		pid_t gc = fork();

		if (gc == 0) {
			int i;

			/* never outlives the probe: dies with it, and on its own after 10 s */
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			if (getppid() != parent)
				_exit(0);
			for (i = 0; i < 100; i++)
				nanosleep(&t, NULL);
			_exit(0);
		}
		if (gc < 0) {
			res[1] = -2; /* no grandchild: not a ptrace answer */
		} else {
			res[1] = ptrace(PTRACE_ATTACH, gc, NULL, NULL) == 0 ? 0 : errno;
			kill(gc, SIGKILL);
			while (waitpid(gc, NULL, 0) < 0 && errno == EINTR)
				;
		}
	}
	if (ops & AEGIS_PROBE_MODULE) {
		static const uint8_t image[64];

		res[2] = syscall(SYS_init_module, image, sizeof(image), "") == 0 ? 0 : errno;
	}
	if (ops & AEGIS_PROBE_BPF) {
		union bpf_attr attr;
		long fd;

		memset(&attr, 0, sizeof(attr));
		fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
		res[3] = fd >= 0 ? 0 : errno;
		if (fd >= 0)
			close((int)fd);
	}
}

/* Fork a child that enters the cgroup and runs body() on a shared
 * result array of `slots` int64 (res[0]: cgroup errno, -1 if never
 * reported), wait up to timeout_ms, copy the results to out. */
static int probe_run(const char *cgroup_procs, void (*body)(const void *, int64_t *),
		     const void *arg, size_t slots, int64_t *out, uint32_t timeout_ms)
{
	size_t bytes = slots * sizeof(int64_t);
	struct timespec nap = { 0, 1000000 }; /* 1 ms */
	uint64_t waited_us = 0;
	int64_t *shared;
	int status, rc = 0;
	pid_t pid, w;

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
	if (pid == 0) {
		enter_cgroup(cgroup_procs, shared);
		body(arg, shared);
		_exit(0);
	}
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

int aegis_probe_open(const char *cgroup_procs, const uint8_t *paths, uint32_t len, uint32_t n,
		     int64_t *out, uint32_t timeout_ms)
{
	struct open_args a = { paths, len, n };

	if (!cgroup_procs || !out || (n > 0 && (!paths || len == 0)) || n > (1u << 20))
		return -EINVAL;
	if (n > 0 && paths[len - 1] != '\0')
		return -EINVAL; /* every path NUL-terminated, the last one too */
	return probe_run(cgroup_procs, open_body, &a, SLOT_HEAD + (size_t)n * SLOT_PER_PATH, out,
			 timeout_ms);
}

int aegis_probe_connect(const char *cgroup_procs, uint32_t addr_be, uint32_t port, int64_t *out,
			uint32_t timeout_ms)
{
	struct connect_args a;

	if (!cgroup_procs || !out || port == 0 || port > 65535)
		return -EINVAL;
	memset(&a, 0, sizeof(a));
	a.sin.sin_family = AF_INET;
	a.sin.sin_addr.s_addr = addr_be;
	a.sin.sin_port = htons((uint16_t)port);
	return probe_run(cgroup_procs, connect_body, &a, 2, out, timeout_ms);
}

int aegis_probe_kernel(const char *cgroup_procs, uint32_t ops, int64_t *out, uint32_t timeout_ms)
{
	int rc, i;

	if (!cgroup_procs || !out || (ops & ~(uint32_t)AEGIS_PROBE_KERNEL_ALL))
		return -EINVAL;
	rc = probe_run(cgroup_procs, kernel_body, &ops, 4, out, timeout_ms);
	/* slots of attempts not asked for: -1 (the shared page starts zeroed) */
	for (i = 0; i < 3; i++)
		if (!(ops & (1u << i)))
			out[1 + i] = -1;
	return rc;
}
