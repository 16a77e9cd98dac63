/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis_shim.c — identity and BPF object lifecycle (open, load, attach,
 * pin, close). Maps by fd and BTF: aegis_map.c; ring buffer: aegis_ring.c;
 * log capture: aegis_log.c. Conventions: see aegis_shim.h.
 */
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "aegis_internal.h"

#ifndef AEGIS_SHIM_BUILD_ID
#define AEGIS_SHIM_BUILD_ID "unknown"
#endif

struct aegis_obj {
	struct bpf_object *obj;
	struct bpf_link **links; /* by program index; NULL: not attached */
	uint32_t nprogs;
};

/* ---- identity ------------------------------------------------------- */

int aegis_shim_api_version(void)
{
	return AEGIS_SHIM_API_VERSION;
}

int aegis_libbpf_version(void)
{
	return (int)(libbpf_major_version() << 16 | libbpf_minor_version());
}

const char *aegis_shim_build_id(void)
{
	return AEGIS_SHIM_BUILD_ID;
}

int aegis_copy_str(const char *s, char *buf, uint32_t cap)
{
	size_t n;

	if (!s || !buf)
		return -EINVAL;
	n = strlen(s);
	if (n + 1 > cap)
		return -ENOSPC;
	memcpy(buf, s, n + 1);
	return (int)n;
}

/* ---- lookups ---------------------------------------------------------- */

static struct bpf_program *prog_at(struct aegis_obj *o, uint32_t idx)
{
	struct bpf_program *p;
	uint32_t i = 0;

	bpf_object__for_each_program(p, o->obj) {
		if (i++ == idx)
			return p;
	}
	return NULL;
}

static struct bpf_map *map_at(struct aegis_obj *o, uint32_t idx)
{
	struct bpf_map *m;
	uint32_t i = 0;

	bpf_object__for_each_map(m, o->obj) {
		if (i++ == idx)
			return m;
	}
	return NULL;
}

/* Index of the program called `name`, or -errno. */
static int prog_index(struct aegis_obj *o, const char *name)
{
	struct bpf_program *p;
	int i = 0;

	if (!o || !name)
		return -EINVAL;
	bpf_object__for_each_program(p, o->obj) {
		if (strcmp(bpf_program__name(p), name) == 0)
			return i;
		i++;
	}
	return -ENOENT;
}

static struct bpf_map *map_named(struct aegis_obj *o, const char *name)
{
	if (!o || !name)
		return NULL;
	return bpf_object__find_map_by_name(o->obj, name);
}

/* ---- object lifecycle ----------------------------------------------- */

static void set_err(int *err, int v)
{
	if (err)
		*err = v;
}

struct aegis_obj *aegis_obj_open_mem(const void *buf, uint64_t len, const char *name, int *err)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
	struct aegis_obj *o;
	struct bpf_program *p;

	if (!buf || len == 0 || len > SIZE_MAX) {
		set_err(err, -EINVAL);
		return NULL;
	}
	o = calloc(1, sizeof(*o));
	if (!o) {
		set_err(err, -ENOMEM);
		return NULL;
	}
	o->obj = bpf_object__open_mem(buf, (size_t)len, &opts);
	if (!o->obj) {
		set_err(err, aegis_neg_errno());
		free(o);
		return NULL;
	}
	bpf_object__for_each_program(p, o->obj)
		o->nprogs++;
	o->links = calloc(o->nprogs ? o->nprogs : 1, sizeof(*o->links));
	if (!o->links) {
		bpf_object__close(o->obj);
		free(o);
		set_err(err, -ENOMEM);
		return NULL;
	}
	set_err(err, 0);
	return o;
}

int aegis_obj_prog_count(struct aegis_obj *o)
{
	return o ? (int)o->nprogs : -EINVAL;
}

int aegis_obj_map_count(struct aegis_obj *o)
{
	struct bpf_map *m;
	int n = 0;

	if (!o)
		return -EINVAL;
	bpf_object__for_each_map(m, o->obj)
		n++;
	return n;
}

int aegis_obj_prog_name(struct aegis_obj *o, uint32_t idx, char *buf, uint32_t cap)
{
	struct bpf_program *p = o ? prog_at(o, idx) : NULL;

	return p ? aegis_copy_str(bpf_program__name(p), buf, cap) : (o ? -ENOENT : -EINVAL);
}

int aegis_obj_map_name(struct aegis_obj *o, uint32_t idx, char *buf, uint32_t cap)
{
	struct bpf_map *m = o ? map_at(o, idx) : NULL;

	return m ? aegis_copy_str(bpf_map__name(m), buf, cap) : (o ? -ENOENT : -EINVAL);
}

int aegis_obj_prog_section(struct aegis_obj *o, uint32_t idx, char *buf, uint32_t cap)
{
	struct bpf_program *p = o ? prog_at(o, idx) : NULL;

	return p ? aegis_copy_str(bpf_program__section_name(p), buf, cap) : (o ? -ENOENT : -EINVAL);
}

int aegis_obj_prog_set_autoload(struct aegis_obj *o, const char *prog, int autoload)
{
	int idx = prog_index(o, prog);

	if (idx < 0)
		return idx;
	return bpf_program__set_autoload(prog_at(o, (uint32_t)idx), autoload != 0);
}

int aegis_obj_map_set_max_entries(struct aegis_obj *o, const char *map, uint32_t n)
{
	struct bpf_map *m = map_named(o, map);

	return m ? bpf_map__set_max_entries(m, n) : (o && map ? -ENOENT : -EINVAL);
}

int aegis_obj_map_set_pin_path(struct aegis_obj *o, const char *map, const char *path)
{
	struct bpf_map *m = map_named(o, map);

	return m ? bpf_map__set_pin_path(m, path) : (o && map ? -ENOENT : -EINVAL);
}

int aegis_obj_load(struct aegis_obj *o)
{
	return o ? bpf_object__load(o->obj) : -EINVAL;
}

/* Attach program #idx: 0 (now or already attached), 1 (not loaded), -errno. */
static int attach_idx(struct aegis_obj *o, uint32_t idx)
{
	struct bpf_program *p = prog_at(o, idx);
	struct bpf_link *link;

	if (!p)
		return -ENOENT;
	if (o->links[idx])
		return 0;
	if (!bpf_program__autoload(p) || bpf_program__fd(p) < 0)
		return 1;
	link = bpf_program__attach(p);
	if (!link)
		return aegis_neg_errno();
	o->links[idx] = link;
	return 0;
}

int aegis_obj_attach_all(struct aegis_obj *o, int32_t *results, uint32_t cap)
{
	int attached = 0;
	uint32_t i;

	if (!o)
		return -EINVAL;
	for (i = 0; i < o->nprogs; i++) {
		int r = attach_idx(o, i);

		if (i < cap && results)
			results[i] = r;
		if (r == 0)
			attached++;
	}
	return attached;
}

int aegis_obj_attach_prog(struct aegis_obj *o, const char *prog)
{
	int idx = prog_index(o, prog);
	int r;

	if (idx < 0)
		return idx;
	r = attach_idx(o, (uint32_t)idx);
	return r == 1 ? -ENOENT : r; /* not loaded: no program to attach */
}

int aegis_obj_detach_prog(struct aegis_obj *o, const char *prog)
{
	int idx = prog_index(o, prog);
	int r;

	if (idx < 0)
		return idx;
	if (!o->links[idx])
		return -ENOENT;
	r = bpf_link__destroy(o->links[idx]);
	o->links[idx] = NULL;
	return r;
}

static struct bpf_link *link_named(struct aegis_obj *o, const char *prog, int *err)
{
	int idx = prog_index(o, prog);

	*err = idx < 0 ? idx : 0;
	if (idx < 0)
		return NULL;
	if (!o->links[idx])
		*err = -ENOENT;
	return o->links[idx];
}

int aegis_obj_link_pin(struct aegis_obj *o, const char *prog, const char *path)
{
	int err;
	struct bpf_link *link = link_named(o, prog, &err);

	if (!link)
		return err;
	return path ? bpf_link__pin(link, path) : -EINVAL;
}

int aegis_obj_link_unpin(struct aegis_obj *o, const char *prog)
{
	int err;
	struct bpf_link *link = link_named(o, prog, &err);

	return link ? bpf_link__unpin(link) : err;
}

int aegis_obj_map_pin(struct aegis_obj *o, const char *map, const char *path)
{
	struct bpf_map *m = map_named(o, map);

	return m ? bpf_map__pin(m, path) : (o && map ? -ENOENT : -EINVAL);
}

int aegis_obj_map_unpin(struct aegis_obj *o, const char *map, const char *path)
{
	struct bpf_map *m = map_named(o, map);

	return m ? bpf_map__unpin(m, path) : (o && map ? -ENOENT : -EINVAL);
}

int aegis_obj_map_fd(struct aegis_obj *o, const char *map)
{
	struct bpf_map *m = map_named(o, map);
	int fd;

	if (!m)
		return o && map ? -ENOENT : -EINVAL;
	fd = bpf_map__fd(m);
	return fd >= 0 ? fd : -ENOENT; /* not created yet */
}

int aegis_obj_prog_fd(struct aegis_obj *o, const char *prog)
{
	int idx = prog_index(o, prog);
	int fd;

	if (idx < 0)
		return idx;
	fd = bpf_program__fd(prog_at(o, (uint32_t)idx));
	return fd >= 0 ? fd : -ENOENT; /* not loaded */
}

void aegis_obj_close(struct aegis_obj *o)
{
	uint32_t i;

	if (!o)
		return;
	for (i = 0; i < o->nprogs; i++)
		bpf_link__destroy(o->links[i]);
	free(o->links);
	bpf_object__close(o->obj);
	free(o);
}
