/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis_map.c — maps by fd (element and batch operations), pinning by fd,
 * and the running kernel's BTF (cached).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "aegis_internal.h"

#ifndef ENOTSUPP
#define ENOTSUPP 524 /* kernel-internal "operation not supported" */
#endif

int aegis_map_info(int fd, uint32_t *type, uint32_t *key_size, uint32_t *value_size,
		   uint32_t *max_entries)
{
	struct bpf_map_info info = {};
	uint32_t len = sizeof(info);
	int r = bpf_obj_get_info_by_fd(fd, &info, &len);

	if (r < 0)
		return r;
	if (type)
		*type = info.type;
	if (key_size)
		*key_size = info.key_size;
	if (value_size)
		*value_size = info.value_size;
	if (max_entries)
		*max_entries = info.max_entries;
	return 0;
}

int aegis_obj_id(int fd, uint32_t *id)
{
	/* bpf_map_info, bpf_link_info and bpf_prog_info all start with type, id */
	uint32_t info[2] = { 0, 0 };
	uint32_t len = sizeof(info);
	int r = bpf_obj_get_info_by_fd(fd, info, &len);

	if (r < 0)
		return r;
	if (!id)
		return -EINVAL;
	*id = info[1];
	return 0;
}

int aegis_map_lookup(int fd, const void *key, void *value)
{
	return value ? bpf_map_lookup_elem(fd, key, value) : -EINVAL;
}

int aegis_map_update(int fd, const void *key, const void *value, uint64_t flags)
{
	return value ? bpf_map_update_elem(fd, key, value, flags) : -EINVAL;
}

int aegis_map_delete(int fd, const void *key)
{
	return bpf_map_delete_elem(fd, key);
}

int aegis_map_next_key(int fd, const void *key, void *next_key)
{
	return next_key ? bpf_map_get_next_key(fd, key, next_key) : -EINVAL;
}

static int is_percpu(uint32_t type)
{
	return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

/* Key size and user-space value size (per-CPU maps: one 8-aligned slot per
 * possible CPU) of a map fd. */
static int elem_sizes(int fd, size_t *ksz, size_t *vsz)
{
	uint32_t type, k, v;
	int r = aegis_map_info(fd, &type, &k, &v, NULL);

	if (r < 0)
		return r;
	*ksz = k;
	*vsz = v;
	if (is_percpu(type)) {
		int ncpu = libbpf_num_possible_cpus();

		if (ncpu < 0)
			return ncpu;
		*vsz = (size_t)((v + 7u) & ~7u) * (size_t)ncpu;
	}
	return 0;
}

static int batch_unsupported(int r)
{
	return r == -ENOTSUPP || r == -EOPNOTSUPP || r == -EINVAL;
}

/* One element at a time from keys[from]; *done counts successes. Missing
 * keys (delete) are skipped; the first other error is returned. */
static int single_ops(int fd, const uint8_t *keys, const uint8_t *values, uint32_t from,
		      uint32_t count, uint64_t flags, uint32_t *done)
{
	size_t ksz, vsz;
	int r = elem_sizes(fd, &ksz, &vsz), first_err = 0;
	uint32_t i;

	if (r < 0)
		return r;
	for (i = from; i < count; i++) {
		const void *k = keys + (size_t)i * ksz;

		r = values ? bpf_map_update_elem(fd, k, values + (size_t)i * vsz, flags)
			   : bpf_map_delete_elem(fd, k);
		if (r == 0)
			(*done)++;
		else if (!(r == -ENOENT && !values) && !first_err)
			first_err = r;
	}
	return first_err;
}

int aegis_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count,
			   uint64_t flags)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
	uint32_t want, n, done = 0;
	int r;

	if (!keys || !values || !count)
		return -EINVAL;
	want = n = *count;
	if (want == 0)
		return 0;
	r = bpf_map_update_batch(fd, keys, values, &n, &opts);
	if (r == 0 || !batch_unsupported(r))
		return r; /* the kernel wrote back how many were updated */
	/* No batch support for this map type: the count was not written. */
	r = single_ops(fd, keys, values, 0, want, flags, &done);
	*count = done;
	return r;
}

/*
 * The kernel's generic batch delete stops at the first missing key and then
 * writes back how many it deleted (-ENOENT); map types without batch support
 * fail without writing the count (libbpf then echoes the input). So: trust
 * the count only on success or -ENOENT, continue one by one after the
 * missing key, and count every delete ourselves otherwise.
 */
int aegis_map_delete_batch(int fd, const void *keys, uint32_t *count)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	uint32_t want, n, done = 0;
	int r;

	if (!keys || !count)
		return -EINVAL;
	want = n = *count;
	if (want == 0)
		return 0;
	r = bpf_map_delete_batch(fd, keys, &n, &opts);
	if (r == 0 && n == want)
		return 0;
	if (r == -ENOENT && n < want) {
		done = n;
		r = single_ops(fd, keys, NULL, n + 1, want, 0, &done);
	} else if (r == 0 || batch_unsupported(r)) {
		done = 0;
		r = single_ops(fd, keys, NULL, 0, want, 0, &done);
	}
	*count = done;
	return r;
}

int aegis_num_possible_cpus(void)
{
	return libbpf_num_possible_cpus();
}

int aegis_obj_get_pinned(const char *path)
{
	return path ? bpf_obj_get(path) : -EINVAL;
}

int aegis_fd_pin(int fd, const char *path)
{
	return path ? bpf_obj_pin(fd, path) : -EINVAL;
}

int aegis_fd_close(int fd)
{
	if (fd < 0)
		return -EBADF;
	return close(fd) == 0 ? 0 : aegis_neg_errno();
}

/* ---- BTF ------------------------------------------------------------ */

static pthread_mutex_t btf_lock = PTHREAD_MUTEX_INITIALIZER;
static struct btf *vmlinux_btf; /* loaded once, kept for the process */

int aegis_btf_has_func(const char *name)
{
	int r;

	if (!name)
		return -EINVAL;
	pthread_mutex_lock(&btf_lock);
	if (!vmlinux_btf) {
		vmlinux_btf = btf__load_vmlinux_btf();
		if (!vmlinux_btf) {
			r = aegis_neg_errno();
			pthread_mutex_unlock(&btf_lock);
			return r;
		}
	}
	r = btf__find_by_name_kind(vmlinux_btf, name, BTF_KIND_FUNC);
	pthread_mutex_unlock(&btf_lock);
	if (r >= 0)
		return 1;
	return r == -ENOENT ? 0 : r;
}

/* Entries per BPF_MAP_LOOKUP_BATCH call of a dump. */
#define AEGIS_DUMP_CHUNK 4096u

/*
 * The dump in batches (BPF_MAP_LOOKUP_BATCH: one syscall per chunk instead
 * of two per entry; a 65k-entry map took ~130k syscalls). 1: the map type
 * has no batch lookup (LPM trie) or a bucket outgrew the chunk: walk it
 * key by key instead. 0 or -errno otherwise, *count as for aegis_map_dump.
 */
static int dump_batch(int fd, size_t ksz, size_t vsz, uint8_t *k, uint8_t *v, uint32_t *count)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	size_t tsz = ksz > 8 ? ksz : 8; /* batch token: a u32 for hashes, a key for arrays */
	uint8_t *scratch, *tok_in, *tok_out;
	uint32_t room = *count, n = 0, got;
	int r = 0, first = 1, done = 0;

	scratch = malloc((ksz + vsz) * AEGIS_DUMP_CHUNK + 2 * tsz);
	if (!scratch)
		return -ENOMEM;
	tok_in = scratch + (ksz + vsz) * AEGIS_DUMP_CHUNK;
	tok_out = tok_in + tsz;
	while (!done) {
		/* past the room, one more chunk into scratch says whether there is more */
		int past = n == room;
		uint8_t *kd = past ? scratch : k + (size_t)n * ksz;
		uint8_t *vd = past || !v ? scratch + ksz * AEGIS_DUMP_CHUNK : v + (size_t)n * vsz;

		got = past ? 1 : room - n < AEGIS_DUMP_CHUNK ? room - n : AEGIS_DUMP_CHUNK;
		r = bpf_map_lookup_batch(fd, first ? NULL : tok_in, tok_out, kd, vd, &got, &opts);
		if (r < 0 && r != -ENOENT) {
			free(scratch);
			/* unsupported, or a bucket larger than the chunk: the walk copes */
			return (first || r == -ENOSPC) && (batch_unsupported(r) || r == -ENOSPC) ? 1 : r;
		}
		done = r == -ENOENT;
		if (past) {
			free(scratch);
			*count = n;
			return got > 0 ? -ENOSPC : 0;
		}
		n += got;
		memcpy(tok_in, tok_out, tsz);
		first = 0;
		if (n == room && done)
			break;
	}
	free(scratch);
	*count = n;
	return 0;
}

int aegis_map_dump(int fd, void *keys, void *values, uint32_t *count)
{
	size_t ksz, vsz;
	uint32_t room, n = 0;
	uint8_t *k = keys, *v = values;
	const void *prev = NULL;
	int r;

	if (!keys || !count)
		return -EINVAL;
	r = elem_sizes(fd, &ksz, &vsz);
	if (r < 0)
		return r;
	room = *count;
	r = dump_batch(fd, ksz, vsz, k, v, count);
	if (r <= 0)
		return r;
	*count = room; /* the batch gave up before copying anything it keeps: walk */
	for (;;) {
		uint8_t *next = k + (size_t)n * ksz;

		if (n == room) {
			/* full: is there one more? (a scratch key past the room would overflow) */
			uint8_t probe[512];

			if (ksz > sizeof(probe))
				return -E2BIG;
			r = bpf_map_get_next_key(fd, prev, probe);
			*count = n;
			return r == -ENOENT ? 0 : r < 0 ? r : -ENOSPC;
		}
		r = bpf_map_get_next_key(fd, prev, next);
		if (r == -ENOENT)
			break;
		if (r < 0) {
			*count = n;
			return r;
		}
		if (v) {
			r = bpf_map_lookup_elem(fd, next, v + (size_t)n * vsz);
			if (r == -ENOENT) {
				/* deleted meanwhile: walk on from it (get_next_key of a
				 * missing key restarts at the first, so keep prev) */
				continue;
			}
			if (r < 0) {
				*count = n;
				return r;
			}
		}
		prev = next;
		n++;
	}
	*count = n;
	return 0;
}
