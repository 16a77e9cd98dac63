// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Load generator for bench/drain: calls openat() on a path that does not
 * exist, as fast as it can, for a given number of seconds, and prints the
 * number of calls and the rate. Each call fires the
 * syscalls/sys_enter_openat tracepoint once.
 *
 *   loadgen SECONDS [RATE [PATH]]    RATE calls/s, 0 = as fast as it can
 * It prints "ready <pid>" and waits for one line on stdin before starting,
 * so the agent can point its tgid filter at it first. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 5.0;
	double rate = argc > 2 ? atof(argv[2]) : 0;
	const char *path = argc > 3 ? argv[3] : "/nonexistent/aegis-bench";
	char line[16];
	unsigned long long calls = 0;
	double t0, t1, deadline;

	printf("ready %d\n", getpid());
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 1;
	t0 = now();
	deadline = t0 + secs;
	do {
		for (int i = 0; i < 1024; i++) {
			int fd = openat(AT_FDCWD, path, O_RDONLY);
			if (fd >= 0)
				close(fd);
		}
		calls += 1024;
		t1 = now();
		if (rate > 0) {
			/* pace: sleep until this batch is due */
			double due = t0 + calls / rate;
			if (due > t1) {
				struct timespec ts = { (time_t)(due - t1), (long)((due - t1 - (time_t)(due - t1)) * 1e9) };
				nanosleep(&ts, NULL);
				t1 = now();
			}
		}
	} while (t1 < deadline);
	printf("calls %llu seconds %.3f rate %.0f\n", calls, t1 - t0, calls / (t1 - t0));
	return 0;
}
