/*
 * bench/vm/ops.c: a tight loop of one operation, timed with CLOCK_MONOTONIC.
 *
 *   ops open    N PATH   open(PATH, O_RDONLY) + close
 *   ops connect N        TCP connect to a 127.0.0.1 listener of this process,
 *                        accept, close both (SO_LINGER 0: no TIME_WAIT, so
 *                        the ephemeral ports never run out)
 *   ops exec    N [PROG] fork + execve(PROG, default /bin/true) + waitpid
 *
 * Prints one line: "<op> <N> <total ns> <ns per op>". Exits 1 on the first
 * failed operation (a benchmark that measures failures measures nothing).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "ops: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void op_open(long n, const char *path)
{
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);

		if (fd < 0)
			die("open");
		close(fd);
	}
}

static int listener(struct sockaddr_in *addr)
{
	socklen_t len = sizeof(*addr);
	int one = 1;
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (s < 0)
		die("socket");
	setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s, (struct sockaddr *)addr, sizeof(*addr)) < 0)
		die("bind");
	if (listen(s, 128) < 0)
		die("listen");
	if (getsockname(s, (struct sockaddr *)addr, &len) < 0)
		die("getsockname");
	return s;
}

static void op_connect_loop(long n, int ls, const struct sockaddr_in *addr)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	for (long i = 0; i < n; i++) {
		int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int a;

		if (c < 0)
			die("socket");
		if (connect(c, (const struct sockaddr *)addr, sizeof(*addr)) < 0)
			die("connect");
		a = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
		if (a < 0)
			die("accept");
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c);
		close(a);
	}
}

static void op_exec(long n, const char *prog)
{
	char *const argv[] = { "true", NULL };
	char *const envp[] = { NULL };

	for (long i = 0; i < n; i++) {
		int st;
		pid_t p = fork();

		if (p < 0)
			die("fork");
		if (p == 0) {
			execve(prog, argv, envp);
			_exit(127);
		}
		if (waitpid(p, &st, 0) < 0)
			die("waitpid");
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "ops: %s failed (status %d)\n", prog, st);
			exit(1);
		}
	}
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	long long t0, t1;
	long n;
	int ls = -1;

	if (argc < 3 || (n = atol(argv[2])) <= 0 ||
	    (strcmp(argv[1], "open") == 0 && argc < 4)) {
		fprintf(stderr, "usage: ops open N PATH | connect N | exec N [PROG]\n");
		return 2;
	}
	if (strcmp(argv[1], "connect") == 0)
		ls = listener(&addr); /* outside the timed loop */
	t0 = now_ns();
	if (strcmp(argv[1], "open") == 0)
		op_open(n, argv[3]);
	else if (strcmp(argv[1], "connect") == 0)
		op_connect_loop(n, ls, &addr);
	else if (strcmp(argv[1], "exec") == 0)
		op_exec(n, argc > 3 ? argv[3] : "/bin/true");
	else {
		fprintf(stderr, "ops: unknown operation %s\n", argv[1]);
		return 2;
	}
	t1 = now_ns();
	printf("%s %ld %lld %.1f\n", argv[1], n, t1 - t0, (double)(t1 - t0) / (double)n);
	return 0;
}
