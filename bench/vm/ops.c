/*
 * bench/vm/ops.c: a tight loop of one operation, timed with CLOCK_MONOTONIC.
 *
 *   ops [-p PID] [-L LINKDIR]... [-P NAME:PROG_ID]... OP N [ARG]
 *
 *   open     N PATH    open(PATH, O_RDONLY) + close, the same file N times
 *   openmany N PREFIX  open + close of PREFIX0000000 .. PREFIX<N-1>, each once
 *                      (distinct files: no inode or dentry is opened twice)
 *   connect  N         TCP connect to a 127.0.0.1 listener of this process,
 *                      accept, close both (SO_LINGER 0: no TIME_WAIT, so the
 *                      ephemeral ports never run out)
 *   exec     N PROG    fork + execve(PROG) + waitpid
 *   execcold N PROG    the same, after a chmod(PROG, 0755) each time: a new
 *                      ctime, so a verified-file cache never answers (every
 *                      exec of a content list hashes the file)
 *   fork     N         fork + child _exit(0) + waitpid
 *   idle     MS        sleep MS milliseconds (a window for -p alone)
 *   mkfiles  N PREFIX  create PREFIX0000000 .. PREFIX<N-1> (setup, untimed)
 *   links              list the kernel's BPF links: "link ID TYPE PROG_ID PROG_TYPE NAME"
 *                      ("?" where a link is being freed: it may still be attached)
 *   progs              list the kernel's BPF programs: "prog ID TYPE NAME"
 *
 * Prints "<op> <N> <total ns> <ns per op>" for the timed loop, then, with
 *   -L DIR  (repeatable) for every link pinned in DIR (bpffs), the program's
 *           kernel.bpf_stats_enabled counters over the same window:
 *           "prog <pin name> <prog id> <run_cnt delta> <run_time_ns delta>"
 *   -P NAME:ID (repeatable) the same for a program given by its kernel id
 *           (the agent's link pins cannot be opened from here while its
 *           self-protection is armed: bench/vm/enforce_bench.ts resolves them)
 *   -p PID  the process's CPU time over the window and its RSS after it:
 *           "pid <PID> <utime+stime delta, clock ticks> <ticks per second> <VmRSS kB>"
 * The counters and /proc/PID/stat are read right before and right after the
 * loop, so the window is the loop (plus the reads themselves: a few bpf()
 * calls, which the lsm/bpf hook sees).
 *
 * Exits 1 on the first failed operation (a benchmark that measures failures
 * measures nothing), 2 on a usage error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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

/* ---- the operations ---------------------------------------------------- */

static void op_open(long n, const char *path)
{
	for (long i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);

		if (fd < 0)
			die(path);
		close(fd);
	}
}

static char **numbered(long n, const char *prefix)
{
	char **p = calloc((size_t)n, sizeof(*p));

	if (!p)
		die("calloc");
	for (long i = 0; i < n; i++)
		if (asprintf(&p[i], "%s%07ld", prefix, i) < 0)
			die("asprintf");
	return p;
}

static void op_openmany(long n, char **paths)
{
	for (long i = 0; i < n; i++) {
		int fd = open(paths[i], O_RDONLY);

		if (fd < 0)
			die(paths[i]);
		close(fd);
	}
}

static void mkfiles(long n, const char *prefix)
{
	char **paths = numbered(n, prefix);

	for (long i = 0; i < n; i++) {
		int fd = open(paths[i], O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

		if (fd < 0)
			die(paths[i]);
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

static void op_connect(long n, int ls, const struct sockaddr_in *addr)
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

static void reap(pid_t p, const char *what)
{
	int st;

	if (waitpid(p, &st, 0) < 0)
		die("waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "ops: %s failed (status %d)\n", what, st);
		exit(1);
	}
}

static void op_exec(long n, const char *prog)
{
	char *const argv[] = { "true", NULL };
	char *const envp[] = { NULL };

	for (long i = 0; i < n; i++) {
		pid_t p = fork();

		if (p < 0)
			die("fork");
		if (p == 0) {
			execve(prog, argv, envp);
			_exit(127);
		}
		reap(p, prog);
	}
}

static void op_execcold(long n, const char *prog)
{
	for (long i = 0; i < n; i++) {
		if (chmod(prog, 0755))
			die("chmod");
		op_exec(1, prog);
	}
}

static void op_fork(long n)
{
	for (long i = 0; i < n; i++) {
		pid_t p = fork();

		if (p < 0)
			die("fork");
		if (p == 0)
			_exit(0);
		reap(p, "fork");
	}
}

static void op_idle(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* ---- bpf(): links, programs, run-time counters ------------------------- */

static long sys_bpf(int cmd, union bpf_attr *a)
{
	return syscall(__NR_bpf, cmd, a, sizeof(*a));
}

static int info_by_fd(int fd, void *info, __u32 len)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	memset(info, 0, len);
	a.info.bpf_fd = (__u32)fd;
	a.info.info_len = len;
	a.info.info = (__u64)(uintptr_t)info;
	return (int)sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a);
}

static int prog_fd_by_id(__u32 id)
{
	union bpf_attr a;

	memset(&a, 0, sizeof(a));
	a.prog_id = id;
	return (int)sys_bpf(BPF_PROG_GET_FD_BY_ID, &a);
}

struct prog {
	char label[256];
	__u32 id;
	int fd;
	__u64 cnt0, ns0;
};

static struct prog progs[256];
static int nprogs;

static void add_link_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	if (!d)
		die(dir);
	while ((e = readdir(d)) != NULL) {
		char path[4096];
		union bpf_attr a;
		struct bpf_link_info li;
		int lfd, pfd;

		if (e->d_name[0] == '.')
			continue;
		if (nprogs == (int)(sizeof(progs) / sizeof(progs[0]))) {
			fprintf(stderr, "ops: more than %d links\n", nprogs);
			exit(1);
		}
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		memset(&a, 0, sizeof(a));
		a.pathname = (__u64)(uintptr_t)path;
		lfd = (int)sys_bpf(BPF_OBJ_GET, &a);
		if (lfd < 0)
			die(path);
		if (info_by_fd(lfd, &li, sizeof(li)) < 0)
			die("link info");
		pfd = prog_fd_by_id(li.prog_id);
		if (pfd < 0)
			die("prog fd");
		close(lfd); /* the prog fd keeps the program, not the attachment */
		snprintf(progs[nprogs].label, sizeof(progs[nprogs].label), "%s", e->d_name);
		progs[nprogs].id = li.prog_id;
		progs[nprogs].fd = pfd;
		nprogs++;
	}
	closedir(d);
}

/* -P NAME:ID: a program by kernel id (the agent's link pins are guarded from
 * this process when self-protection is armed; program fds are not) */
static void add_prog(const char *arg)
{
	const char *colon = strrchr(arg, ':');
	char *end;
	unsigned long id;
	int pfd;

	if (!colon || colon == arg || colon[1] == '\0') {
		fprintf(stderr, "ops: -P wants NAME:ID, got '%s'\n", arg);
		exit(2);
	}
	id = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || id == 0 || id > 0xffffffffUL) {
		fprintf(stderr, "ops: -P wants NAME:ID, got '%s'\n", arg);
		exit(2);
	}
	if (nprogs == (int)(sizeof(progs) / sizeof(progs[0]))) {
		fprintf(stderr, "ops: more than %d programs\n", nprogs);
		exit(1);
	}
	pfd = prog_fd_by_id((__u32)id);
	if (pfd < 0)
		die("prog fd");
	snprintf(progs[nprogs].label, sizeof(progs[nprogs].label), "%.*s", (int)(colon - arg), arg);
	progs[nprogs].id = (__u32)id;
	progs[nprogs].fd = pfd;
	nprogs++;
}

static void stats(int after)
{
	for (int i = 0; i < nprogs; i++) {
		struct bpf_prog_info pi;

		if (info_by_fd(progs[i].fd, &pi, sizeof(pi)) < 0)
			die("prog info");
		if (!after) {
			progs[i].cnt0 = pi.run_cnt;
			progs[i].ns0 = pi.run_time_ns;
		} else {
			printf("prog %s %u %llu %llu\n", progs[i].label, progs[i].id,
			       (unsigned long long)(pi.run_cnt - progs[i].cnt0),
			       (unsigned long long)(pi.run_time_ns - progs[i].ns0));
		}
	}
}

static void list_links(void)
{
	__u32 id = 0;

	for (;;) {
		union bpf_attr a;
		struct bpf_link_info li;
		struct bpf_prog_info pi;
		int lfd, pfd;

		memset(&a, 0, sizeof(a));
		a.start_id = id;
		if (sys_bpf(BPF_LINK_GET_NEXT_ID, &a) < 0) {
			if (errno == ENOENT)
				return;
			die("BPF_LINK_GET_NEXT_ID");
		}
		id = a.next_id;
		memset(&a, 0, sizeof(a));
		a.link_id = id;
		lfd = (int)sys_bpf(BPF_LINK_GET_FD_BY_ID, &a);
		if (lfd < 0) {
			/* its last reference is gone, but the kernel frees (detaches) it
			 * from a work queue: it may still be attached */
			printf("link %u ? ? ? ?\n", id);
			continue;
		}
		if (info_by_fd(lfd, &li, sizeof(li)) < 0)
			die("link info");
		close(lfd);
		pfd = prog_fd_by_id(li.prog_id);
		if (pfd < 0 || info_by_fd(pfd, &pi, sizeof(pi)) < 0) {
			printf("link %u %u %u ? ?\n", id, li.type, li.prog_id);
		} else {
			printf("link %u %u %u %u %s\n", id, li.type, li.prog_id, pi.type,
			       pi.name[0] ? pi.name : "?");
		}
		if (pfd >= 0)
			close(pfd);
	}
}

static void list_progs(void)
{
	__u32 id = 0;

	for (;;) {
		union bpf_attr a;
		struct bpf_prog_info pi;
		int fd;

		memset(&a, 0, sizeof(a));
		a.start_id = id;
		if (sys_bpf(BPF_PROG_GET_NEXT_ID, &a) < 0) {
			if (errno == ENOENT)
				return;
			die("BPF_PROG_GET_NEXT_ID");
		}
		id = a.next_id;
		fd = prog_fd_by_id(id);
		if (fd < 0) {
			printf("prog %u ? ?\n", id);
			continue;
		}
		if (info_by_fd(fd, &pi, sizeof(pi)) < 0)
			die("prog info");
		close(fd);
		printf("prog %u %u %s\n", id, pi.type, pi.name[0] ? pi.name : "?");
	}
}

/* ---- a process's CPU time and RSS -------------------------------------- */

static unsigned long long cpu_ticks(int pid)
{
	char path[64], buf[4096];
	unsigned long long ut, st;
	ssize_t len;
	char *p;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path);
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		die(path);
	buf[len] = 0;
	p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
	/* after ")": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt
	 * majflt cmajflt utime(14) stime(15) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2) {
		fprintf(stderr, "ops: cannot parse %s\n", path);
		exit(1);
	}
	return ut + st;
}

static long rss_kb(int pid)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		die(path);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* ---- main ----------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr, "usage: ops [-p PID] [-L LINKDIR]... [-P NAME:ID]... open N PATH | openmany N PREFIX | "
			"connect N | exec N PROG | execcold N PROG | fork N | idle MS | mkfiles N PREFIX | links | progs\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr;
	unsigned long long cpu0 = 0, cpu1 = 0;
	char **paths = NULL;
	long long t0, t1;
	const char *op;
	int pid = 0, ls = -1, c;
	long n;

	while ((c = getopt(argc, argv, "+p:L:P:")) != -1) {
		switch (c) {
		case 'p':
			pid = atoi(optarg);
			break;
		case 'P':
			add_prog(optarg);
			break;
		case 'L':
			add_link_dir(optarg);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage();
	op = argv[0];
	if (strcmp(op, "links") == 0) {
		list_links();
		return 0;
	}
	if (strcmp(op, "progs") == 0) {
		list_progs();
		return 0;
	}
	if (argc < 2 || (n = atol(argv[1])) <= 0)
		usage();
	if ((strcmp(op, "open") == 0 || strcmp(op, "openmany") == 0 || strcmp(op, "exec") == 0 ||
	     strcmp(op, "execcold") == 0 || strcmp(op, "mkfiles") == 0) && argc < 3)
		usage();
	if (strcmp(op, "mkfiles") == 0) {
		mkfiles(n, argv[2]);
		return 0;
	}
	/* setup outside the timed loop */
	if (strcmp(op, "connect") == 0)
		ls = listener(&addr);
	else if (strcmp(op, "openmany") == 0)
		paths = numbered(n, argv[2]);

	stats(0);
	if (pid)
		cpu0 = cpu_ticks(pid);
	t0 = now_ns();
	if (strcmp(op, "open") == 0)
		op_open(n, argv[2]);
	else if (strcmp(op, "openmany") == 0)
		op_openmany(n, paths);
	else if (strcmp(op, "connect") == 0)
		op_connect(n, ls, &addr);
	else if (strcmp(op, "exec") == 0)
		op_exec(n, argv[2]);
	else if (strcmp(op, "execcold") == 0)
		op_execcold(n, argv[2]);
	else if (strcmp(op, "fork") == 0)
		op_fork(n);
	else if (strcmp(op, "idle") == 0)
		op_idle(n);
	else {
		fprintf(stderr, "ops: unknown operation %s\n", op);
		return 2;
	}
	t1 = now_ns();
	if (pid)
		cpu1 = cpu_ticks(pid);
	printf("%s %ld %lld %.1f\n", op, n, t1 - t0, (double)(t1 - t0) / (double)n);
	stats(1);
	if (pid)
		printf("pid %d %llu %ld %ld\n", pid, cpu1 - cpu0, sysconf(_SC_CLK_TCK), rss_kb(pid));
	return 0;
}
