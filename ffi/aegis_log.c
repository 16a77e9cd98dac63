/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libbpf's log, captured: libbpf_set_print() appends every message at or
 * below the chosen level to a bounded in-memory buffer (newest 64 KiB kept);
 * aegis_log_read() hands it to the caller and clears it. Nothing prints.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "aegis_internal.h"

#define LOG_CAP (64u * 1024u)
#define LOG_LINE_MAX 1024u

static const char truncated_marker[] = "[truncated]\n";

static struct {
	pthread_mutex_t lock;
	char text[LOG_CAP];
	uint32_t len;
	int truncated;
	int level;
} log_state = { .lock = PTHREAD_MUTEX_INITIALIZER, .level = LIBBPF_INFO };

/* Append, keeping the newest LOG_CAP bytes. Caller holds the lock. */
static void log_append(const char *s, uint32_t n)
{
	if (n >= LOG_CAP) {
		s += n - LOG_CAP;
		n = LOG_CAP;
	}
	if (log_state.len + n > LOG_CAP) {
		uint32_t drop = log_state.len + n - LOG_CAP;

		memmove(log_state.text, log_state.text + drop, log_state.len - drop);
		log_state.len -= drop;
		log_state.truncated = 1;
	}
	memcpy(log_state.text + log_state.len, s, n);
	log_state.len += n;
}

/* Format into `stack` or, for long messages (a verifier log comes as one
 * message), into a heap buffer; returns the text or NULL. */
static char *log_format(char *stack, size_t cap, int *len, const char *fmt, va_list ap)
{
	va_list again;
	char *heap;
	int n;

	va_copy(again, ap);
	n = vsnprintf(stack, cap, fmt, ap);
	if (n < 0 || (size_t)n < cap) {
		va_end(again);
		*len = n;
		return n < 0 ? NULL : stack;
	}
	heap = malloc((size_t)n + 1);
	if (heap)
		n = vsnprintf(heap, (size_t)n + 1, fmt, again);
	else
		n = (int)cap - 1; /* no memory: keep the cut message */
	va_end(again);
	*len = n;
	return heap ? heap : stack;
}

static int log_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	char *text;
	int n;

	if ((int)level > __atomic_load_n(&log_state.level, __ATOMIC_RELAXED))
		return 0;
	text = log_format(line, sizeof(line), &n, fmt, ap);
	if (!text || n < 0)
		return 0;
	pthread_mutex_lock(&log_state.lock);
	log_append(text, (uint32_t)n); /* the newest 64 KiB: a log's end says why */
	pthread_mutex_unlock(&log_state.lock);
	if (text != line)
		free(text);
	return 0;
}

__attribute__((constructor)) static void log_install(void)
{
	libbpf_set_print(log_print);
}

void aegis_log_set_level(int level)
{
	if (level < LIBBPF_WARN)
		level = LIBBPF_WARN;
	if (level > LIBBPF_DEBUG)
		level = LIBBPF_DEBUG;
	__atomic_store_n(&log_state.level, level, __ATOMIC_RELAXED);
}

int aegis_log_read(char *buf, uint32_t cap)
{
	uint32_t room, mark = 0, n, skip;

	if (!buf || cap == 0)
		return -EINVAL;
	room = cap - 1;
	pthread_mutex_lock(&log_state.lock);
	n = log_state.len;
	if ((log_state.truncated || n > room) && room >= sizeof(truncated_marker) - 1 && n > 0) {
		mark = sizeof(truncated_marker) - 1;
		memcpy(buf, truncated_marker, mark);
	}
	if (n > room - mark)
		n = room - mark;
	skip = log_state.len - n; /* keep the newest text */
	memcpy(buf + mark, log_state.text + skip, n);
	buf[mark + n] = '\0';
	log_state.len = 0;
	log_state.truncated = 0;
	pthread_mutex_unlock(&log_state.lock);
	return (int)(mark + n);
}
