// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * shim_smoke.c — host-kernel smoke test of dist/native/libaegis_shim.so with
 * dist/native/aegis.bpf.o. Root only. Prints one line per check and a final
 * "N passed, M failed"; exits 1 on any failure.
 *   bash tests/native/run.sh
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "aegis_shim.h"
#include "aegis_abi.h"

#define N_OPENS 300
#define SMALL_CAP 1000 /* room for 6 open records of 144 bytes */

static int passed, failed;

static void check(int ok, const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("%s - %s", ok ? "ok  " : "FAIL", what);
	if (!ok && fmt) {
		printf(" (");
		va_start(ap, fmt);
		vprintf(fmt, ap);
		va_end(ap);
		printf(")");
	}
	printf("\n");
	fflush(stdout);
	if (ok)
		passed++;
	else
		failed++;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	void *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)n;
	}
	fclose(f);
	return buf;
}

static int prog_index(struct aegis_obj *obj, const char *name)
{
	char buf[64];
	int i, n = aegis_obj_prog_count(obj);

	for (i = 0; i < n; i++)
		if (aegis_obj_prog_name(obj, (uint32_t)i, buf, sizeof(buf)) >= 0 &&
		    strcmp(buf, name) == 0)
			return i;
	return -1;
}

static int set_cfg(int cfg_fd, uint32_t slot, uint64_t v)
{
	return aegis_map_update(cfg_fd, &slot, &v, 0);
}

static uint64_t counter_sum(int fd, uint32_t slot)
{
	int i, ncpu = aegis_num_possible_cpus();
	uint64_t vals[1024] = { 0 }, sum = 0;

	if (ncpu <= 0 || ncpu > 1024 || aegis_map_lookup(fd, &slot, vals) < 0)
		return UINT64_MAX;
	for (i = 0; i < ncpu; i++)
		sum += vals[i];
	return sum;
}

/* ---- checks, one group per function ------------------------------------ */

static void check_identity(void)
{
	const char *id = aegis_shim_build_id();

	check(aegis_shim_api_version() == AEGIS_SHIM_API_VERSION, "api version", NULL);
	check(aegis_libbpf_version() == (1 << 16 | 1), "libbpf version 1.1", "got %#x",
	      aegis_libbpf_version());
	check(id && strlen(id) == 64 && strspn(id, "0123456789abcdef") == 64,
	      "build id is a sha256", "got %s", id ? id : "(null)");
}

static void check_log_after_failure(void)
{
	static const char junk[64] = "definitely not an ELF object";
	char log[65536];
	struct aegis_obj *bad;
	int err = 0, n;

	aegis_log_read(log, sizeof(log)); /* clear */
	bad = aegis_obj_open_mem(junk, sizeof(junk), "junk", &err);
	check(!bad && err < 0, "open_mem of junk fails with -errno", "err=%d", err);
	aegis_obj_close(bad);
	n = aegis_log_read(log, sizeof(log));
	check(n > 0 && strlen(log) == (size_t)n, "log_read returns libbpf's text after the failure",
	      "n=%d", n);
	if (n > 0)
		printf("       log: %.*s\n", (int)strcspn(log, "\n"), log);
	n = aegis_log_read(log, sizeof(log));
	check(n == 0, "log_read cleared the buffer", "n=%d", n);
}

/* Is program #i an LSM program (section "lsm/..." or sleepable "lsm.s/...")? */
static int is_lsm_prog(struct aegis_obj *obj, int i)
{
	char sec[64];

	return aegis_obj_prog_section(obj, (uint32_t)i, sec, sizeof(sec)) > 0 &&
	       (strncmp(sec, "lsm/", 4) == 0 || strncmp(sec, "lsm.s/", 6) == 0);
}

/* Set autoload of every LSM program; returns how many there are. */
static int set_lsm_autoload(struct aegis_obj *obj, int on)
{
	char name[64];
	int i, n = 0;

	for (i = 0; i < aegis_obj_prog_count(obj); i++) {
		if (!is_lsm_prog(obj, i) || aegis_obj_prog_name(obj, (uint32_t)i, name, sizeof(name)) < 0)
			continue;
		if (aegis_obj_prog_set_autoload(obj, name, on) == 0)
			n++;
	}
	return n;
}

static struct aegis_obj *open_and_load(const char *path, int *lsm_idx)
{
	char sec[64];
	size_t len = 0;
	void *buf = read_file(path, &len);
	struct aegis_obj *obj;
	uint32_t max = 0;
	int err = -1;

	check(buf != NULL, "read BPF object", "%s", path);
	if (!buf)
		return NULL;
	obj = aegis_obj_open_mem(buf, len, "aegis", &err);
	free(buf); /* libbpf copied it */
	check(obj && err == 0, "open_mem", "err=%d", err);
	if (!obj)
		return NULL;
	check(aegis_obj_prog_count(obj) >= 3, "at least 3 programs", "got %d",
	      aegis_obj_prog_count(obj));
	check(aegis_obj_map_count(obj) >= 4, "at least 4 maps", "got %d", aegis_obj_map_count(obj));
	*lsm_idx = prog_index(obj, "aegis_file_open");
	check(*lsm_idx >= 0 && aegis_obj_prog_section(obj, (uint32_t)*lsm_idx, sec, sizeof(sec)) > 0 &&
		      strcmp(sec, "lsm/file_open") == 0,
	      "aegis_file_open is lsm/file_open", NULL);
	check(aegis_obj_prog_name(obj, 0, sec, 2) == -ENOSPC, "short name buffer gives -ENOSPC", NULL);
	check(set_lsm_autoload(obj, 0) > 0, "disable autoload of every lsm/ program", NULL);
	check(aegis_obj_map_set_max_entries(obj, "aegis_events", 1 << 20) == 0,
	      "resize aegis_events to 1 MiB", NULL);
	err = aegis_obj_load(obj);
	check(err == 0, "load (tracepoints only)", "err=%d", err);
	if (err)
		return obj;
	check(aegis_map_info(aegis_obj_map_fd(obj, "aegis_events"), NULL, NULL, NULL, &max) == 0 &&
		      max == 1 << 20,
	      "aegis_events has 1 MiB", "max=%u", max);
	check(aegis_obj_map_set_max_entries(obj, "aegis_events", 1 << 21) < 0,
	      "resize after load is refused", NULL);
	return obj;
}

static void check_attach(struct aegis_obj *obj, int lsm_idx)
{
	int32_t res[64];
	int i, count = aegis_obj_prog_count(obj), n, tps = 0, ok = count > 0 && count <= 64;

	(void)lsm_idx;
	for (i = 0; i < 64; i++)
		res[i] = -99;
	n = aegis_obj_attach_all(obj, res, 64);
	for (i = 0; ok && i < count; i++) {
		ok = res[i] == (is_lsm_prog(obj, i) ? 1 : 0);
		tps += !is_lsm_prog(obj, i);
	}
	check(ok && n == tps, "attach_all: tracepoints 0, LSM programs 1 (not loaded)",
	      "n=%d tracepoints=%d results=%d,%d,%d,%d", n, tps, res[0], res[1], res[2], res[3]);
}

/* Drain everything with a small buffer; count our open records. */
static void check_drain(struct aegis_ring *ring, const char *path, uint64_t t0, uint64_t t1)
{
	uint8_t buf[SMALL_CAP];
	uint32_t recs = 0, total = 0, ours = 0, bad_fields = 0, drains = 0, over = 0;
	int64_t left_after_first = -1;
	int n;

	n = aegis_ring_drain(ring, buf, 100, &recs);
	check(n == -EMSGSIZE && recs == 0, "drain with a buffer smaller than one record: -EMSGSIZE",
	      "n=%d", n);
	while ((n = aegis_ring_drain(ring, buf, sizeof(buf), &recs)) > 0) {
		uint32_t off = 0, i;

		if (drains++ == 0)
			left_after_first = aegis_ring_avail(ring);
		if (recs > SMALL_CAP / 144)
			over++;
		for (i = 0; i < recs; i++) {
			uint32_t len, zero;
			struct aegis_ev_open ev;

			memcpy(&len, buf + off, 4);
			memcpy(&zero, buf + off + 4, 4);
			memset(&ev, 0, sizeof(ev));
			memcpy(&ev, buf + off + 8, len < sizeof(ev) ? len : sizeof(ev));
			off += 8 + ((len + 7) & ~7u);
			total++;
			if (ev.hdr.kind != AEGIS_EV_OPEN || strcmp(ev.path, path) != 0)
				continue;
			ours++;
			if (zero || len != sizeof(ev) || ev.hdr.size != sizeof(ev) ||
			    ev.hdr.version != AEGIS_EV_OPEN_V2 || ev.hdr.ktime_ns < t0 ||
			    ev.hdr.ktime_ns > t1 || ev.proc.pid != (uint32_t)getpid() ||
			    ev.proc.tid != (uint32_t)gettid() || ev.proc.ppid != (uint32_t)getppid() ||
			    ev.proc.uid != getuid() || ev.proc.start_time == 0 ||
			    strcmp(ev.proc.comm, "shim_smoke") != 0 || ev.dfd != AT_FDCWD ||
			    ev.flags != (O_RDONLY | O_CLOEXEC))
				bad_fields++;
		}
		if (off != (uint32_t)n)
			over++;
	}
	check(n == 0, "drain ends with 0 bytes", "n=%d", n);
	check(drains > 1 && left_after_first > 0, "records that did not fit stayed in the ring",
	      "drains=%u left=%lld", drains, (long long)left_after_first);
	check(over == 0, "each drain fits its buffer and bytes match records", "bad=%u", over);
	check(ours == N_OPENS, "one open record per openat, none lost", "got %u of %d (total %u)",
	      ours, N_OPENS, total);
	check(bad_fields == 0, "hdr/proc/open fields (size, kind, version, ktime, pid, tid, ppid, "
			       "uid, start_time, comm, dfd, flags, path)",
	      "%u bad records", bad_fields);
	check(aegis_ring_avail(ring) == 0, "ring empty after draining", NULL);
}

static void check_trace(struct aegis_obj *obj)
{
	int cfg = aegis_obj_map_fd(obj, "aegis_config"), cnt = aegis_obj_map_fd(obj, "aegis_counters");
	char path[64];
	struct aegis_ring *ring;
	uint64_t t0, t1, events0;
	int err = -1, i, fd;

	snprintf(path, sizeof(path), "/tmp/aegis_smoke_%d", getpid());
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	ring = aegis_ring_open(aegis_obj_map_fd(obj, "aegis_events"), &err);
	check(ring && err == 0, "ring_open", "err=%d", err);
	if (!ring)
		return;
	check(aegis_ring_wait(ring, 0) == 0, "ring_wait times out while tracing is off", NULL);
	events0 = counter_sum(cnt, AEGIS_CNT_EVENTS);
	check(set_cfg(cfg, AEGIS_CFG_TRACE_TGID, (uint64_t)getpid()) == 0 &&
		      set_cfg(cfg, AEGIS_CFG_TRACE_ENABLE, 1) == 0,
	      "config TRACE_TGID=getpid(), TRACE_ENABLE=1", NULL);
	t0 = now_ns();
	for (i = 0; i < N_OPENS; i++) {
		fd = openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			close(fd);
	}
	t1 = now_ns();
	set_cfg(cfg, AEGIS_CFG_TRACE_ENABLE, 0);
	check(aegis_ring_wait(ring, 1000) == 1, "ring_wait wakes with data", NULL);
	check(aegis_ring_avail(ring) >= N_OPENS * 144, "ring_avail covers the records", "avail=%lld",
	      (long long)aegis_ring_avail(ring));
	check_drain(ring, path, t0, t1);
	check(counter_sum(cnt, AEGIS_CNT_EVENTS) - events0 >= N_OPENS,
	      "per-CPU EVENTS counter counted the records", "delta=%llu",
	      (unsigned long long)(counter_sum(cnt, AEGIS_CNT_EVENTS) - events0));
	check(counter_sum(cnt, AEGIS_CNT_RINGBUF_DROPS) == 0, "no ring-buffer drops", NULL);
	aegis_ring_close(ring);
	unlink(path);
}

/* Exec of a child (its tgid set as the filter before it execs). */
static void check_exec(struct aegis_obj *obj)
{
	int cfg = aegis_obj_map_fd(obj, "aegis_config"), pfd[2], err = -1, status, found = 0;
	struct aegis_ring *ring = aegis_ring_open(aegis_obj_map_fd(obj, "aegis_events"), &err);
	uint8_t buf[4096];
	uint32_t recs = 0, off = 0, i;
	pid_t child;
	char c;
	int n;

	if (!ring || pipe(pfd) < 0) {
		check(0, "exec record", "setup failed err=%d", err);
		return;
	}
	child = fork();
	if (child == 0) {
		close(pfd[1]);
		if (read(pfd[0], &c, 1) == 1)
			execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	set_cfg(cfg, AEGIS_CFG_TRACE_TGID, (uint64_t)child);
	set_cfg(cfg, AEGIS_CFG_TRACE_ENABLE, 1);
	close(pfd[0]);
	(void)!write(pfd[1], "x", 1);
	close(pfd[1]);
	waitpid(child, &status, 0);
	set_cfg(cfg, AEGIS_CFG_TRACE_ENABLE, 0);
	n = aegis_ring_drain(ring, buf, sizeof(buf), &recs);
	for (i = 0; n > 0 && i < recs; i++) {
		struct aegis_ev_exec ev;
		uint32_t len;

		memcpy(&len, buf + off, 4);
		memcpy(&ev, buf + off + 8, sizeof(ev));
		if (ev.hdr.kind == AEGIS_EV_EXEC && len == sizeof(ev) && ev.hdr.size == sizeof(ev) &&
		    ev.proc.pid == (uint32_t)child && ev.proc.ppid == (uint32_t)getpid() &&
		    strcmp(ev.proc.comm, "true") == 0)
			found++;
		off += 8 + ((len + 7) & ~7u);
	}
	check(found == 1, "exec record of a child (kind, size, pid, ppid, comm)", "found=%d n=%d", found,
	      n);
	aegis_ring_close(ring);
}

static void make_keys(struct aegis_inode_key *keys, uint32_t *vals, uint32_t n)
{
	uint32_t i;

	memset(keys, 0, sizeof(*keys) * n);
	for (i = 0; i < n; i++) {
		keys[i].ino = 1000 + i;
		keys[i].dev = 0x800001;
		vals[i] = 1;
	}
}

static uint32_t map_entries(int fd)
{
	struct aegis_inode_key k, next;
	uint32_t n = 0;
	const void *prev = NULL;

	while (aegis_map_next_key(fd, prev, &next) == 0) {
		n++;
		k = next;
		prev = &k;
	}
	return n;
}

static void check_batch(struct aegis_obj *obj)
{
	int fd = aegis_obj_map_fd(obj, "aegis_survival_inode"), r;
	struct aegis_inode_key keys[100];
	uint32_t vals[100], v = 0, count = 100, type = 0, ks = 0, vs = 0;

	make_keys(keys, vals, 100);
	check(aegis_map_info(fd, &type, &ks, &vs, NULL) == 0 && ks == 16 && vs == 4,
	      "map_info of aegis_survival_inode", "type=%u key=%u value=%u", type, ks, vs);
	r = aegis_map_update_batch(fd, keys, vals, &count, 0);
	check(r == 0 && count == 100 && map_entries(fd) == 100, "update_batch 100 keys",
	      "r=%d count=%u", r, count);
	check(aegis_map_lookup(fd, &keys[42], &v) == 0 && v == 1, "lookup a batch-written key", NULL);
	aegis_map_delete(fd, &keys[10]);
	aegis_map_delete(fd, &keys[30]);
	count = 50;
	r = aegis_map_delete_batch(fd, keys, &count);
	check(r == 0 && count == 48, "delete_batch of 50 keys with 2 missing deletes 48 (fallback)",
	      "r=%d count=%u", r, count);
	check(map_entries(fd) == 50, "50 entries left", "got %u", map_entries(fd));
	count = 50;
	r = aegis_map_delete_batch(fd, keys + 50, &count);
	check(r == 0 && count == 50 && map_entries(fd) == 0, "delete_batch of the other 50",
	      "r=%d count=%u", r, count);
	check(aegis_map_delete(fd, &keys[0]) == -ENOENT, "single delete of a missing key: -ENOENT",
	      NULL);
}

static void check_pin(struct aegis_obj *obj)
{
	char dir[64], path[96];
	uint32_t max = 0;
	int fd;

	snprintf(dir, sizeof(dir), "/sys/fs/bpf/aegis_smoke_%d", getpid());
	snprintf(path, sizeof(path), "%s/deny", dir);
	if (mkdir(dir, 0700) < 0) {
		check(0, "pin: mkdir under /sys/fs/bpf", "%s", strerror(errno));
		return;
	}
	check(aegis_obj_map_pin(obj, "aegis_deny_inode", path) == 0, "map_pin", NULL);
	fd = aegis_obj_get_pinned(path);
	check(fd >= 0 && aegis_map_info(fd, NULL, NULL, NULL, &max) == 0 && max == 65536,
	      "get_pinned gives the map", "fd=%d max=%u", fd, max);
	check(fd >= 0 && aegis_fd_close(fd) == 0, "fd_close", NULL);
	check(aegis_obj_map_unpin(obj, "aegis_deny_inode", path) == 0, "map_unpin", NULL);
	check(aegis_obj_get_pinned(path) == -ENOENT, "pinned path gone after unpin", NULL);
	rmdir(dir);
}

static void check_btf(void)
{
	check(aegis_btf_has_func("bpf_lsm_file_open") == 1, "btf_has_func(bpf_lsm_file_open) == 1",
	      "got %d", aegis_btf_has_func("bpf_lsm_file_open"));
	check(aegis_btf_has_func("nonexistent_xyz") == 0, "btf_has_func(nonexistent_xyz) == 0",
	      "got %d", aegis_btf_has_func("nonexistent_xyz"));
}

/* aegis_clock_offset_ns: realtime minus monotonic, as measured here around
 * the call (the two differ by the time between the reads: allow 50 ms) */
static void check_clock_offset(void)
{
	struct timespec m, r;
	int64_t off = 0, mine;
	int rc;

	clock_gettime(CLOCK_MONOTONIC, &m);
	clock_gettime(CLOCK_REALTIME, &r);
	rc = aegis_clock_offset_ns(&off);
	mine = ((int64_t)r.tv_sec - m.tv_sec) * 1000000000LL + (r.tv_nsec - m.tv_nsec);
	check(rc == 0, "clock_offset_ns: returns 0", "got %d", rc);
	check(off > 0 && llabs(off - mine) < 50000000LL,
	      "clock_offset_ns: realtime - monotonic, within 50 ms of ours",
	      "got %lld, measured %lld", (long long)off, (long long)mine);
}

/* A "Key: value" line of a /proc status file into *v (hex for the Cap*
 * sets, decimal otherwise); 0, or -1 when the file or the key is missing. */
static int status_field(const char *path, const char *key, unsigned long long *v)
{
	char line[256], fmt[32];
	int found = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return -1;
	snprintf(fmt, sizeof(fmt), strncmp(key, "Cap", 3) ? "%s: %%llu" : "%s: %%llx", key);
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, fmt, v) == 1;
	fclose(f);
	return found ? 0 : -1;
}

/* aegis_no_new_privs: off to start with, on after a set, and what
 * /proc/self/status says too (in a child: the flag can never be cleared) */
static int nnp_status(void)
{
	unsigned long long v;

	return status_field("/proc/self/status", "NoNewPrivs", &v) ? -1 : (int)v;
}

static void check_no_new_privs(void)
{
	int st = 0;
	pid_t pid = fork();

	if (pid == 0) {
		if (aegis_no_new_privs(0) != 0 || nnp_status() != 0)
			_exit(1);
		if (aegis_no_new_privs(1) != 1)
			_exit(2);
		if (nnp_status() != 1 || aegis_no_new_privs(0) != 1)
			_exit(3);
		_exit(0);
	}
	check(pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "no_new_privs: off, set, read back on (prctl and /proc/self/status agree)",
	      "child status %d", st);
}

/* aegis_seccomp_install: in a child with a second thread, enforce mode
 * gives both threads the filter (TSYNC), listed calls work, an unlisted one
 * (syslog, never the daemon's) fails with ENOSYS; the names are the list. */
static void *seccomp_thread(void *arg)
{
	struct timespec t = { 1, 0 };

	__atomic_store_n((int *)arg, 1, __ATOMIC_SEQ_CST);
	for (;;) /* clock_nanosleep is on the list (pause is not: it would return ENOSYS) */
		nanosleep(&t, NULL);
	return NULL;
}

static int seccomp_status(const char *path)
{
	unsigned long long v;

	return status_field(path, "Seccomp", &v) ? -1 : (int)v;
}

static void check_seccomp(void)
{
	char names[8192];
	int n = aegis_seccomp_names(names, sizeof(names));
	int st = 0;
	pid_t pid, w;

	check(n > 0 && strstr(names, "\nbpf\n") && strstr(names, "futex\n") == names &&
		      !strstr(names, "\nsyslog\n"),
	      "seccomp_names: the list, one per line (bpf on it, syslog not)", "got %d", n);
	check(aegis_seccomp_install(7) == -EINVAL, "seccomp_install: an unknown mode is -EINVAL",
	      NULL);
	pid = fork();
	if (pid == 0) {
		pthread_t t;
		char path[300];
		int r;

		static int started;
		struct timespec ms = { 0, 1000000 };

		if (pthread_create(&t, NULL, seccomp_thread, &started))
			_exit(10);
		for (r = 0; r < 5000 && !__atomic_load_n(&started, __ATOMIC_SEQ_CST); r++)
			nanosleep(&ms, NULL);
		if (aegis_no_new_privs(1) != 1)
			_exit(11);
		r = aegis_seccomp_install(1);
		if (r < 100)
			_exit(12);
		if (seccomp_status("/proc/thread-self/status") != 2)
			_exit(13);
		/* the other thread: the one that is not us */
		{
			DIR *d = opendir("/proc/self/task");
			struct dirent *e;
			int other = -1;

			if (!d)
				_exit(14);
			while ((e = readdir(d)))
				if (e->d_name[0] != '.' && atol(e->d_name) != (long)syscall(SYS_gettid)) {
					snprintf(path, sizeof(path), "/proc/self/task/%.32s/status",
						 e->d_name);
					other = seccomp_status(path);
				}
			closedir(d);
			if (other != 2)
				_exit(20 + other);
		}
		if (getpid() <= 0)
			_exit(16);
		errno = 0;
		if (syscall(SYS_syslog, 10, NULL, 0) != -1 || errno != ENOSYS)
			_exit(17);
		_exit(0);
	}
	w = pid > 0 ? waitpid(pid, &st, 0) : -1;
	check(w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "seccomp_install: both threads filtered, listed calls work, syslog is ENOSYS",
	      "child %d, waitpid %d (errno %d), status %d", (int)pid, (int)w, errno, st);
}

/* aegis_caps_limit: in a child with a second thread, both threads end with
 * only the kept capabilities in the bounding, effective and permitted sets */
static void check_caps_limit(void)
{
	/* CAP_DAC_OVERRIDE (1), CAP_SYS_ADMIN (21), CAP_BPF (39) */
	const unsigned long long keep = (1ULL << 1) | (1ULL << 21) | (1ULL << 39);
	int st = 0;
	pid_t pid = fork(), w;

	if (pid == 0) {
		static int started;
		struct timespec ms = { 0, 1000000 };
		pthread_t t;
		uint32_t threads = 0;
		DIR *d;
		struct dirent *e;
		int n = 0;

		if (pthread_create(&t, NULL, seccomp_thread, &started))
			_exit(10);
		for (int i = 0; i < 5000 && !__atomic_load_n(&started, __ATOMIC_SEQ_CST); i++)
			nanosleep(&ms, NULL);
		if (aegis_caps_limit(keep, &threads) != 0)
			_exit(11);
		if (threads != 2)
			_exit(12);
		d = opendir("/proc/self/task");
		if (!d)
			_exit(13);
		while ((e = readdir(d))) {
			char path[300];
			unsigned long long eff, prm, bnd;

			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/self/task/%.32s/status", e->d_name);
			if (status_field(path, "CapEff", &eff) || status_field(path, "CapPrm", &prm) ||
			    status_field(path, "CapBnd", &bnd))
				_exit(14);
			if ((eff | prm | bnd) & ~keep)
				_exit(15);
			if (!(eff & (1ULL << 21)))
				_exit(16); /* a kept one is still held */
			n++;
		}
		closedir(d);
		_exit(n == 2 ? 0 : 17);
	}
	w = pid > 0 ? waitpid(pid, &st, 0) : -1;
	check(w == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	      "caps_limit: both threads keep only the kept capabilities (bounding, effective, permitted)",
	      "child %d, status %d", (int)pid, st);
}

/* aegis_landlock_abi: a version when landlock is an active LSM, else -ENOSYS/-EOPNOTSUPP */
static void check_landlock(void)
{
	char lsm[512] = "";
	FILE *f = fopen("/sys/kernel/security/lsm", "r");
	int abi = aegis_landlock_abi();

	if (f) {
		if (!fgets(lsm, sizeof(lsm), f))
			lsm[0] = '\0';
		fclose(f);
	}
	if (strstr(lsm, "landlock"))
		check(abi >= 1, "landlock_abi: a version (landlock is an active LSM)", "got %d", abi);
	else
		check(abi == -ENOSYS || abi == -EOPNOTSUPP,
		      "landlock_abi: -ENOSYS or -EOPNOTSUPP (landlock is not active)", "got %d", abi);
}

/* Is "bpf" in the active LSM list? 1 yes, 0 no, -1 unknown. */
static int bpf_lsm_active(void)
{
	char lsm[512] = "";
	FILE *f = fopen("/sys/kernel/security/lsm", "r");
	char *tok, *save = NULL;
	int found = 0;

	if (!f)
		return -1;
	if (!fgets(lsm, sizeof(lsm), f))
		lsm[0] = '\0';
	fclose(f);
	for (tok = strtok_r(lsm, ",\n", &save); tok; tok = strtok_r(NULL, ",\n", &save))
		found |= strcmp(tok, "bpf") == 0;
	return found;
}

/* With bpf in the active LSM list, lsm/file_open denies an inode listed in
 * aegis_deny_inode, counts it, and allows it again once the key is deleted.
 * Without it (Debian 6.1 booted without "bpf" in lsm=), the program loads and
 * attaches but never runs: attached is not enforcing. */
static void check_enforce(struct aegis_obj *obj, int active)
{
	int deny = aegis_obj_map_fd(obj, "aegis_deny_inode");
	int cnt = aegis_obj_map_fd(obj, "aegis_counters");
	int policy = aegis_obj_map_fd(obj, "aegis_policy");
	struct aegis_inode_key key;
	struct aegis_rule rule = { .rule_id = 1, .flags = AEGIS_RULE_DENY, .rule_type = AEGIS_RT_INODE };
	struct aegis_policy pol = { .flags = AEGIS_POL_FILE_RULES };
	uint32_t gen0 = 0;
	char path[64];
	struct stat st;
	uint64_t denies0;
	int fd, r, e;

	snprintf(path, sizeof(path), "/tmp/aegis_deny_%d", getpid());
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		check(0, "enforce: temp file", "%s", strerror(errno));
		return;
	}
	close(fd);
	r = aegis_obj_attach_prog(obj, "aegis_file_open");
	check(r == 0, "attach lsm/file_open", "r=%d", r);
	memset(&key, 0, sizeof(key));
	key.ino = st.st_ino;
	key.dev = (uint32_t)(major(st.st_dev) << 20 | minor(st.st_dev));
	denies0 = counter_sum(cnt, AEGIS_CNT_FILE_DENY);
	check(aegis_map_update(policy, &gen0, &pol, 0) == 0, "generation 0 has file rules", NULL);
	check(aegis_map_update(deny, &key, &rule, 0) == 0, "deny the temp file's inode", NULL);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	e = errno;
	if (fd >= 0)
		close(fd);
	if (active == 1) {
		check(fd < 0 && e == EPERM, "open of a denied inode fails with EPERM",
		      "fd=%d errno=%d", fd, e);
		check(counter_sum(cnt, AEGIS_CNT_FILE_DENY) - denies0 == 1, "FILE_DENY counter +1",
		      NULL);
	} else {
		check(fd >= 0 && counter_sum(cnt, AEGIS_CNT_FILE_DENY) == denies0,
		      "bpf not an active LSM: attached but not enforcing (open allowed, no deny)",
		      "fd=%d errno=%d", fd, e);
	}
	aegis_map_delete(deny, &key);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	check(fd >= 0, "open allowed again after the key is deleted", "errno=%d", errno);
	if (fd >= 0)
		close(fd);
	unlink(path);
}

/* With the LSM program left on. Where BPF LSM works the load succeeds;
 * where it does not, load must fail with -errno and the captured log must
 * say which program. Note: "bpf" in the LSM list is not enough — this host
 * lists it and still refuses lsm programs with EPERM. */
static void check_lsm_load(const char *path)
{
	size_t len = 0;
	void *buf = read_file(path, &len);
	struct aegis_obj *obj;
	char *log = malloc(65536);
	int err = -1, active = bpf_lsm_active(), n = 0;

	obj = buf ? aegis_obj_open_mem(buf, len, "aegis_lsm", &err) : NULL;
	free(buf);
	if (!obj || !log) {
		check(0, "LSM load probe", "open err=%d", err);
		goto out;
	}
	aegis_log_read(log, 65536);
	err = aegis_obj_load(obj);
	n = aegis_log_read(log, 65536);
	printf("       bpf in /sys/kernel/security/lsm: %s; load with the LSM program: %d\n",
	       active < 0 ? "unknown" : active ? "yes" : "no", err);
	if (err == 0) {
		check(1, "load with the LSM program succeeds (BPF LSM usable)", NULL);
		check_enforce(obj, active);
	} else
		check(err < 0 && n > 0 && strstr(log, "prog 'aegis_file_open'"),
		      "load with the LSM program refused with -errno; the log names the program",
		      "err=%d log=%d bytes", err, n);
	if (err && n > 0)
		printf("       %.*s\n", (int)strcspn(log, "\n"), log);
out:
	free(log);
	aegis_obj_close(obj);
}

/*
 * The unix listener (ffi/aegis_sock.c): the socket mode is set before
 * listen, accept reports the connecting child's pid/uid/gid (SO_PEERCRED),
 * a read with no data times out, bytes flow, shutdown ends the stream, and
 * RLIMIT_NOFILE is raised to the hard limit.
 */
static void check_sock(void)
{
	char dir[] = "/tmp/aegis-sock-XXXXXX";
	char path[128];
	struct stat st;
	int32_t cred[3] = { 0, -1, -1 };
	uint8_t buf[16];
	uint64_t lim[3];
	int lfd, fd, n;
	pid_t child;

	if (!mkdtemp(dir)) {
		check(0, "sock: mkdtemp", "%s", strerror(errno));
		return;
	}
	snprintf(path, sizeof(path), "%s/s.sock", dir);
	lfd = aegis_unix_listen(path, 0600, 8);
	check(lfd >= 0 && stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	      "sock: listen, mode 0600", "lfd=%d", lfd);
	check(aegis_unix_listen(path, 0600, 8) == -EADDRINUSE, "sock: second listen is -EADDRINUSE",
	      NULL);
	check(aegis_unix_accept(lfd, 10, cred) == -ETIMEDOUT, "sock: accept times out", NULL);
	child = fork();
	if (child == 0) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		char r;

		if (strlen(path) >= sizeof(a.sun_path))
			_exit(5);
		memcpy(a.sun_path, path, strlen(path) + 1);
		if (c < 0 || connect(c, (struct sockaddr *)&a, sizeof(a)) < 0)
			_exit(2);
		if (write(c, "ping", 4) != 4)
			_exit(3);
		_exit(read(c, &r, 1) == 0 ? 0 : 4); /* end of stream after shutdown */
	}
	fd = aegis_unix_accept(lfd, 5000, cred);
	check(fd >= 0 && cred[0] == child && cred[1] == 0 && cred[2] == 0,
	      "sock: accept gives the child's pid, uid 0, gid 0", "fd=%d pid=%d/%d uid=%d gid=%d", fd,
	      cred[0], (int)child, cred[1], cred[2]);
	n = aegis_sock_read(fd, buf, sizeof(buf), 5000);
	check(n == 4 && memcmp(buf, "ping", 4) == 0, "sock: read the child's bytes", "n=%d", n);
	check(aegis_sock_read(fd, buf, sizeof(buf), 10) == -ETIMEDOUT, "sock: idle read times out",
	      NULL);
	check(aegis_sock_write(fd, (const uint8_t *)"x", 0, 10) == -EINVAL,
	      "sock: zero-length write is -EINVAL", NULL);
	check(aegis_sock_shutdown(fd) == 0 && aegis_sock_close(fd) == 0, "sock: shutdown, close",
	      NULL);
	{
		int status = -1;

		waitpid(child, &status, 0);
		check(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "sock: the child saw end of stream", "status=%d", status);
	}
	check(aegis_sock_close(lfd) == 0, "sock: close listener", NULL);
	unlink(path);
	rmdir(dir);
	check(aegis_raise_nofile(0, lim) == 0 && lim[2] >= lim[0] && lim[2] <= lim[1],
	      "raise_nofile: soft raised up to hard", "old=%llu hard=%llu new=%llu",
	      (unsigned long long)lim[0], (unsigned long long)lim[1], (unsigned long long)lim[2]);
}

/* aegis_sd_notify: a datagram to a path and to an abstract name, bad forms refused */
static void check_sd_notify(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/aegis-notify-XXXXXX";
	char path[108], buf[64], abs_name[64];
	socklen_t alen;
	int rx, n;

	check(mkdtemp(dir) != NULL, "sd_notify: temp dir", NULL);
	snprintf(path, sizeof(path), "%s/notify", dir);
	memcpy(a.sun_path, path, strlen(path) + 1);
	rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	check(rx >= 0 && bind(rx, (struct sockaddr *)&a, sizeof(a)) == 0, "sd_notify: receiver bound",
	      NULL);
	check(aegis_sd_notify(path, (const uint8_t *)"READY=1", 7) == 0, "sd_notify: sent to a path",
	      NULL);
	n = (int)recv(rx, buf, sizeof(buf), MSG_DONTWAIT);
	check(n == 7 && memcmp(buf, "READY=1", 7) == 0, "sd_notify: the path's receiver got it",
	      "n=%d", n);
	close(rx);
	unlink(path);
	rmdir(dir);

	snprintf(abs_name, sizeof(abs_name), "@aegis-notify-%d", (int)getpid());
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path + 1, abs_name + 1, strlen(abs_name) - 1);
	alen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(abs_name));
	rx = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	check(rx >= 0 && bind(rx, (struct sockaddr *)&a, alen) == 0,
	      "sd_notify: abstract receiver bound", NULL);
	check(aegis_sd_notify(abs_name, (const uint8_t *)"STOPPING=1", 10) == 0,
	      "sd_notify: sent to an abstract name", NULL);
	n = (int)recv(rx, buf, sizeof(buf), MSG_DONTWAIT);
	check(n == 10 && memcmp(buf, "STOPPING=1", 10) == 0,
	      "sd_notify: the abstract receiver got it", "n=%d", n);
	close(rx);

	check(aegis_sd_notify("relative/sock", (const uint8_t *)"x", 1) == -EINVAL,
	      "sd_notify: a relative path is -EINVAL", NULL);
	check(aegis_sd_notify("@", (const uint8_t *)"x", 1) == -EINVAL,
	      "sd_notify: an empty abstract name is -EINVAL", NULL);
	check(aegis_sd_notify("/nonexistent/aegis-notify", (const uint8_t *)"x", 1) == -ENOENT,
	      "sd_notify: a missing socket is -ENOENT", NULL);
}

int main(int argc, char **argv)
{
	const char *obj_path = argc > 1 ? argv[1] : "dist/native/aegis.bpf.o";
	struct aegis_obj *obj;
	int lsm_idx = -1;

	if (geteuid() != 0) {
		printf("SKIP - needs root (BPF load)\n");
		return 1;
	}
	check_identity();
	check_sd_notify();
	check_log_after_failure();
	obj = open_and_load(obj_path, &lsm_idx);
	if (obj && aegis_obj_prog_fd(obj, "aegis_trace_openat") >= 0) {
		check(aegis_obj_prog_fd(obj, "aegis_file_open") == -ENOENT, "LSM program has no fd",
		      NULL);
		check_attach(obj, lsm_idx);
		check_trace(obj);
		check_exec(obj);
		check_batch(obj);
		check_pin(obj);
		check(aegis_obj_detach_prog(obj, "aegis_trace_exec") == 0 &&
			      aegis_obj_detach_prog(obj, "aegis_trace_exec") == -ENOENT,
		      "detach_prog, then -ENOENT", NULL);
	}
	aegis_obj_close(obj);
	aegis_obj_close(NULL);
	check_lsm_load(obj_path);
	check_btf();
	check_landlock();
	check_clock_offset();
	check_no_new_privs();
	check_seccomp();
	check_caps_limit();
	check_sock();
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
