// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * aegis_sock.c — the control socket's listener, done in C because Deno can
 * neither read SO_PEERCRED nor wrap a raw fd into a Deno.Conn:
 *
 *  - aegis_unix_listen: socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK),
 *    bind, chmod to the requested mode, then listen (nobody can connect
 *    before the mode is set: connect() to a bound, not listening socket is
 *    refused);
 *  - aegis_unix_accept: poll with a timeout, accept4, SO_PEERCRED;
 *  - aegis_sock_read / aegis_sock_write: poll with a timeout, then one
 *    non-blocking recv/send (MSG_NOSIGNAL: a vanished peer is -EPIPE, never
 *    a signal);
 *  - aegis_sock_shutdown wakes a call blocked in poll on the same fd from
 *    another thread (close() would not, and would let the fd number be
 *    reused under it): TypeScript shuts down first and closes only when no
 *    call on the fd is in flight (src/native/unix_listener.ts);
 *  - aegis_raise_nofile: RLIMIT_NOFILE soft limit up to a target;
 *  - aegis_sd_notify: one datagram to the service manager's notification
 *    socket (systemd's sd_notify protocol; Deno cannot send to an abstract
 *    AF_UNIX address).
 *
 * Every wait is bounded by its timeout_ms, so a call made on Deno's blocking
 * thread pool (nonblocking: true) always gives its thread back.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <poll.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "aegis_internal.h"

/* Soft RLIMIT_NOFILE target when the hard limit is unlimited. */
#define AEGIS_NOFILE_UNLIMITED_TARGET 1048576ULL

int aegis_unix_listen(const char *path, uint32_t mode, int backlog)
{
	struct sockaddr_un addr;
	size_t len;
	int fd, rc;

	if (!path || backlog <= 0 || (mode & ~0777u))
		return -EINVAL;
	len = strlen(path);
	if (len == 0)
		return -EINVAL;
	if (len >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, len + 1);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return aegis_neg_errno();
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		rc = aegis_neg_errno();
		close(fd);
		return rc;
	}
	if (chmod(path, (mode_t)mode) < 0 || listen(fd, backlog) < 0) {
		rc = aegis_neg_errno();
		unlink(path);
		close(fd);
		return rc;
	}
	return fd;
}

/* poll one fd for `events`; 1 ready, -ETIMEDOUT, or -errno. */
static int wait_fd(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int rc;

	if (fd < 0)
		return -EBADF;
	if (timeout_ms < 0)
		return -EINVAL; /* never wait forever */
	do {
		rc = poll(&p, 1, timeout_ms);
	} while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return aegis_neg_errno();
	if (rc == 0)
		return -ETIMEDOUT;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return 1;
}

int aegis_unix_accept(int lfd, int timeout_ms, int32_t *cred)
{
	struct ucred uc;
	socklen_t ul = sizeof(uc);
	int fd, rc;

	if (!cred)
		return -EINVAL;
	rc = wait_fd(lfd, POLLIN, timeout_ms);
	if (rc < 0)
		return rc;
	do {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	} while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : aegis_neg_errno();
	memset(&uc, 0, sizeof(uc));
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || ul != sizeof(uc)) {
		rc = aegis_neg_errno();
		close(fd);
		return rc;
	}
	cred[0] = (int32_t)uc.pid;
	cred[1] = (int32_t)uc.uid;
	cred[2] = (int32_t)uc.gid;
	return fd;
}

int aegis_sock_read(int fd, uint8_t *buf, uint32_t cap, int timeout_ms)
{
	ssize_t n;
	int rc;

	if (!buf || cap == 0)
		return -EINVAL;
	if (cap > (1u << 30))
		cap = 1u << 30;
	rc = wait_fd(fd, POLLIN, timeout_ms);
	if (rc < 0)
		return rc;
	do {
		n = recv(fd, buf, cap, MSG_DONTWAIT);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : aegis_neg_errno();
	return (int)n;
}

int aegis_sock_write(int fd, const uint8_t *buf, uint32_t len, int timeout_ms)
{
	ssize_t n;
	int rc;

	if (!buf || len == 0)
		return -EINVAL;
	if (len > (1u << 30))
		len = 1u << 30;
	rc = wait_fd(fd, POLLOUT, timeout_ms);
	if (rc < 0)
		return rc;
	do {
		n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : aegis_neg_errno();
	return (int)n;
}

int aegis_sock_shutdown(int fd)
{
	if (shutdown(fd, SHUT_RDWR) < 0 && errno != ENOTCONN)
		return aegis_neg_errno();
	return 0;
}

int aegis_sock_close(int fd)
{
	/* Linux releases the fd even when close() reports EINTR: never retry. */
	if (close(fd) < 0 && errno != EINTR)
		return aegis_neg_errno();
	return 0;
}

int aegis_raise_nofile(uint64_t target, uint64_t *out)
{
	struct rlimit rl;
	rlim_t want;

	if (!out)
		return -EINVAL;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return aegis_neg_errno();
	out[0] = (uint64_t)rl.rlim_cur;
	out[1] = (uint64_t)rl.rlim_max;
	if (target == 0)
		want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)AEGIS_NOFILE_UNLIMITED_TARGET : rl.rlim_max;
	else
		want = (rlim_t)target;
	if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
		want = rl.rlim_max;
	if (want > rl.rlim_cur) {
		rl.rlim_cur = want;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			return aegis_neg_errno();
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return aegis_neg_errno();
	out[2] = (uint64_t)rl.rlim_cur;
	return 0;
}


int aegis_sd_notify(const char *path, const uint8_t *msg, uint32_t len)
{
	struct sockaddr_un addr;
	socklen_t alen;
	size_t plen;
	ssize_t n;
	int fd, rc = 0;

	if (!path || (!msg && len))
		return -EINVAL;
	plen = strlen(path);
	/* an absolute path, or "@name": the abstract namespace (sun_path[0] = 0) */
	if (plen < 2 || (path[0] != '/' && path[0] != '@'))
		return -EINVAL;
	if (plen >= sizeof(addr.sun_path))
		return -ENAMETOOLONG;
	memset(&addr, 0, sizeof(addr));
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, plen);
	if (path[0] == '@')
		addr.sun_path[0] = 0;
	/* a path's address includes its NUL; an abstract name's is exactly its bytes */
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '/'));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return aegis_neg_errno();
	n = sendto(fd, msg, len, MSG_NOSIGNAL, (struct sockaddr *)&addr, alen);
	if (n < 0)
		rc = aegis_neg_errno();
	else if ((size_t)n != len)
		rc = -EMSGSIZE;
	close(fd);
	return rc;
}
