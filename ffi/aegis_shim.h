/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis_shim.h — the C surface that TypeScript calls through Deno FFI.
 *
 * Conventions (see docs/native.md):
 *  - every int-returning call returns >= 0 on success and -errno on failure
 *    (libbpf-specific codes are > 4000, e.g. -LIBBPF_ERRNO__PROG2BIG);
 *  - pointer-returning calls take `int *err` and set it to 0 or -errno;
 *  - nothing prints: libbpf's log goes into a bounded in-memory buffer read
 *    with aegis_log_read();
 *  - handles are opaque; *_close() accepts NULL;
 *  - no callbacks into the caller, ever.
 *
 * The symbol table in src/native/symbols.ts mirrors this file; the
 * artifacts test checks that every symbol resolves and that the arity of
 * every TypeScript definition matches the prototype here.
 */
#ifndef AEGIS_SHIM_H
#define AEGIS_SHIM_H

#include <stddef.h>
#include <stdint.h>

#define AEGIS_SHIM_API_VERSION 6

struct aegis_obj;
struct aegis_ring;

/* ---- identity ------------------------------------------------------- */

/* API version of this header (AEGIS_SHIM_API_VERSION). */
int aegis_shim_api_version(void);
/* libbpf version the shim was linked with: major << 16 | minor. */
int aegis_libbpf_version(void);
/* Build identity string (NUL-terminated, static): set at build time with
 * -DAEGIS_SHIM_BUILD_ID="..." (the SHA-256 of the shim sources). */
const char *aegis_shim_build_id(void);
/* Path of the file the dynamic loader mapped this shim from (dladdr),
 * into buf (NUL-terminated); returns its length. */
int aegis_shim_path(char *buf, uint32_t cap);

/* ---- log ------------------------------------------------------------ */

/* Set the minimum libbpf level kept: 0 warn, 1 info, 2 debug. */
void aegis_log_set_level(int level);
/* Copy up to cap-1 bytes of buffered log text into buf, NUL-terminate,
 * clear the buffer. Returns the number of bytes copied (the buffer keeps
 * the newest 64 KiB; older text is dropped and a "[truncated]" marker is
 * put first). */
int aegis_log_read(char *buf, uint32_t cap);

/* ---- object lifecycle ----------------------------------------------- */

/* Open a BPF ELF object from memory (the buffer is copied by libbpf).
 * `name` is the object name (NUL-terminated). */
struct aegis_obj *aegis_obj_open_mem(const void *buf, uint64_t len, const char *name, int *err);
/* Number of programs / maps in the object. */
int aegis_obj_prog_count(struct aegis_obj *obj);
int aegis_obj_map_count(struct aegis_obj *obj);
/* Name of program/map #idx into buf (NUL-terminated); returns its length. */
int aegis_obj_prog_name(struct aegis_obj *obj, uint32_t idx, char *buf, uint32_t cap);
int aegis_obj_map_name(struct aegis_obj *obj, uint32_t idx, char *buf, uint32_t cap);
/* Section name (e.g. "lsm/file_open") of program #idx. */
int aegis_obj_prog_section(struct aegis_obj *obj, uint32_t idx, char *buf, uint32_t cap);
/* Before load: enable/disable loading a program (by name). */
int aegis_obj_prog_set_autoload(struct aegis_obj *obj, const char *prog, int autoload);
/* Before load: set max_entries of a map (by name). */
int aegis_obj_map_set_max_entries(struct aegis_obj *obj, const char *map, uint32_t n);
/* Before load: reuse an already pinned map (bpf_map__set_pin_path + reuse). */
int aegis_obj_map_set_pin_path(struct aegis_obj *obj, const char *map, const char *path);
/* Load all autoload programs and create maps. */
int aegis_obj_load(struct aegis_obj *obj);
/* Attach every loaded program that has an auto-attachable section.
 * results[i] (for i < cap, program index order) receives 0 on success,
 * -errno on failure, or 1 when the program was not loaded (autoload off).
 * Returns the number of programs attached, or -errno if nothing could be
 * tried. Links are kept by the object. */
int aegis_obj_attach_all(struct aegis_obj *obj, int32_t *results, uint32_t cap);
/* Attach / detach one program by name. */
int aegis_obj_attach_prog(struct aegis_obj *obj, const char *prog);
int aegis_obj_detach_prog(struct aegis_obj *obj, const char *prog);
/* Pin / unpin the link of an attached program. */
int aegis_obj_link_pin(struct aegis_obj *obj, const char *prog, const char *path);
int aegis_obj_link_unpin(struct aegis_obj *obj, const char *prog);
/* Pin / unpin a map. */
int aegis_obj_map_pin(struct aegis_obj *obj, const char *map, const char *path);
int aegis_obj_map_unpin(struct aegis_obj *obj, const char *map, const char *path);
/* fd of a map / program by name (owned by the object: do not close). */
int aegis_obj_map_fd(struct aegis_obj *obj, const char *map);
int aegis_obj_prog_fd(struct aegis_obj *obj, const char *prog);
/* Destroy links (detaching unpinned ones), unload, free. NULL is fine. */
void aegis_obj_close(struct aegis_obj *obj);

/* ---- maps by fd ----------------------------------------------------- */

/* Key/value sizes of a map fd (bpf_obj_get_info_by_fd). */
int aegis_map_info(int fd, uint32_t *type, uint32_t *key_size, uint32_t *value_size,
		   uint32_t *max_entries);
/* The kernel id of a map, link or program fd (self-protection guards by id). */
int aegis_obj_id(int fd, uint32_t *id);
int aegis_map_lookup(int fd, const void *key, void *value);
int aegis_map_update(int fd, const void *key, const void *value, uint64_t flags);
int aegis_map_delete(int fd, const void *key);
/* Next key after `key` (NULL: first). -ENOENT at the end. */
int aegis_map_next_key(int fd, const void *key, void *next_key);
/* Batch ops: *count is in/out. Batch delete stops at the first missing
 * key in the kernel; the shim falls back to single deletes for map types
 * without batch support and for partial deletes, and writes back the
 * number really deleted. */
int aegis_map_update_batch(int fd, const void *keys, const void *values, uint32_t *count,
			   uint64_t flags);
int aegis_map_delete_batch(int fd, const void *keys, uint32_t *count);
/* Every key of the map (and, when `values` is not NULL, its value) packed
 * into keys/values, in one call: *count is in/out (room, then copied).
 * -ENOSPC when the map holds more than the room (the first *count are
 * copied). A key deleted while the map is walked is skipped. */
int aegis_map_dump(int fd, void *keys, void *values, uint32_t *count);
/* Possible CPUs (the value of per-CPU maps is this many slots). */
int aegis_num_possible_cpus(void);
/* Open a pinned object (map, prog or link) by path: returns an fd. */
int aegis_obj_get_pinned(const char *path);
/* Pin an fd at path. */
int aegis_fd_pin(int fd, const char *path);
/* Close an fd returned by aegis_obj_get_pinned(). */
int aegis_fd_close(int fd);

/* ---- BTF ------------------------------------------------------------ */

/* Does the running kernel's BTF (vmlinux) have a FUNC named `name`?
 * 1 yes, 0 no, -errno when BTF cannot be read. Cached after first use. */
int aegis_btf_has_func(const char *name);

/* ---- kernel facts (ffi/aegis_self.c) --------------------------------- */

/* The Landlock ABI version the running kernel offers:
 * landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION), which
 * creates nothing. Returns the version (>= 1), or -errno: -ENOSYS (the
 * kernel has no Landlock, or a seccomp filter hides the call), -EOPNOTSUPP
 * (built in but not enabled at boot). */
int aegis_landlock_abi(void);

/* CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns, into *out: added to a
 * bpf_ktime_get_ns() value it gives the event's wall-clock time. Read as
 * monotonic, realtime, monotonic (the tightest of a few tries), so the
 * error is the width of that window (sub-microsecond). Returns 0 or -errno. */
int aegis_clock_offset_ns(int64_t *out);

/* no_new_privs (prctl PR_SET_NO_NEW_PRIVS): with `set`, turn it on (it can
 * never be turned off again, and every later execve of this process and its
 * children keeps it: no setuid or file-capability gain). Returns what the
 * kernel then holds (PR_GET_NO_NEW_PRIVS: 1 on, 0 off), or -errno. The flag
 * is per thread: call it before other threads are created, or from each. */
int aegis_no_new_privs(int set);

/* The daemon's seccomp filter (aegis_seccomp_list.h) on every thread of the
 * process (SECCOMP_FILTER_FLAG_TSYNC; needs no_new_privs or CAP_SYS_ADMIN),
 * inherited by every thread and process created afterwards. mode 1: a call
 * not on the list fails with ENOSYS and is logged by the kernel's audit
 * (type=1326); mode 2: it is only logged. It cannot be removed. Returns the
 * number of calls allowed, or -errno (-ENOTSUP: no list for this
 * architecture; -EBUSY: a thread could not take the filter). */
int aegis_seccomp_install(uint32_t mode);
/* The allow list's names, one per line, into buf[0..cap); the length or -errno. */
int aegis_seccomp_names(char *buf, uint32_t cap);

/* Keep only the capabilities in the bit mask `keep` (bit n = capability n),
 * on every thread of the process: bounding set (so no exec regains them),
 * effective and permitted sets; inheritable and ambient sets emptied. Each
 * thread changes its own sets in the handler of a real-time signal (as
 * glibc's setuid does). *threads_out: the threads asked, this one included.
 * Returns 0 or -errno (-ETIMEDOUT: a thread that still exists never ran the
 * handler, e.g. it blocks the signal). Cannot be undone. */
int aegis_caps_limit(uint64_t keep, uint32_t *threads_out);

/* ---- ring buffer ---------------------------------------------------- */

/* Map the ring buffer `map_fd` (BPF_MAP_TYPE_RINGBUF) for consumption. */
struct aegis_ring *aegis_ring_open(int map_fd, int *err);
/* Copy as many committed records as fit into out[0..cap) and consume
 * them; records that do not fit stay in the ring for the next call.
 * Each record is written as: u32 len, u32 zero, then len bytes, then zero
 * padding to a multiple of 8. Discarded records are consumed silently.
 * *records receives the record count. Returns the bytes written (>= 0).
 * Never blocks. */
int aegis_ring_drain(struct aegis_ring *ring, uint8_t *out, uint32_t cap, uint32_t *records);
/* Bytes committed and not yet consumed. */
int64_t aegis_ring_avail(struct aegis_ring *ring);
/* Wait until the kernel wakes the ring (a record submitted with a wake-up
 * since the last wait; edge-triggered epoll) or timeout_ms passes. Records
 * submitted without a wake-up do not end a wait: drain at the timeout.
 * Returns 1 when woken, 0 on timeout, -errno on error. */
int aegis_ring_wait(struct aegis_ring *ring, int timeout_ms);
void aegis_ring_close(struct aegis_ring *ring);

/* ---- unix sockets (the control socket; ffi/aegis_sock.c) ------------- */

/* Listen on a new AF_UNIX stream socket bound at `path` (CLOEXEC,
 * non-blocking), chmod to `mode` before listen(). Returns the fd. */
int aegis_unix_listen(const char *path, uint32_t mode, int backlog);
/* Wait up to timeout_ms (>= 0) for a connection and accept it (CLOEXEC,
 * non-blocking); cred[0..2] receive the peer's pid, uid, gid from
 * SO_PEERCRED. Returns the fd, -ETIMEDOUT, -EAGAIN (raced), or -errno
 * (-EMFILE, -ENFILE ...). */
int aegis_unix_accept(int lfd, int timeout_ms, int32_t *cred);
/* Wait up to timeout_ms (>= 0) until readable, then one recv of up to cap
 * bytes. Returns the count (0: end of stream), -ETIMEDOUT, -EAGAIN or
 * -errno. */
int aegis_sock_read(int fd, uint8_t *buf, uint32_t cap, int timeout_ms);
/* Wait up to timeout_ms (>= 0) until writable, then one send (never
 * SIGPIPE). Returns the count written, -ETIMEDOUT, -EAGAIN or -errno. */
int aegis_sock_write(int fd, const uint8_t *buf, uint32_t len, int timeout_ms);
/* shutdown(SHUT_RDWR): wakes a read/write/accept waiting on fd. */
int aegis_sock_shutdown(int fd);
/* close(fd). Call only when no other call on fd is in flight. */
int aegis_sock_close(int fd);

/* Send `len` bytes of `msg` as one datagram to the service manager's
 * notification socket `path` (the NOTIFY_SOCKET value: an absolute path, or
 * "@name" for the abstract namespace). Returns 0, or -errno (-EINVAL for
 * another form of address). */
int aegis_sd_notify(const char *path, const uint8_t *msg, uint32_t len);

/* ---- process limits ------------------------------------------------- */

/* Raise the RLIMIT_NOFILE soft limit to `target` (0: the hard limit, or
 * 1048576 when the hard limit is unlimited), never above the hard limit and
 * never lowering it. out[0] old soft, out[1] hard, out[2] new soft. */
int aegis_raise_nofile(uint64_t target, uint64_t *out);

/* ---- rule verification (ffi/aegis_probe.c) ---------------------------- */

/* int64 slots per path in aegis_probe_open()'s out. */
#define AEGIS_PROBE_SLOTS 5
/* Fork a child that moves itself into the cgroup of `cgroup_procs` (its
 * cgroup.procs file), then for each of the n NUL-terminated paths packed in
 * paths[0..len): open(O_PATH) (following symlinks), fstat, and only for a
 * regular file or a directory open it again for reading through
 * /proc/self/fd (O_NONBLOCK|O_NOCTTY); nothing is read. out holds
 * 2 + n * AEGIS_PROBE_SLOTS int64: out[0] errno of the cgroup move (0 moved,
 * -1 the child never reported), out[1] paths done; per path: errno of the
 * O_PATH open (0 ok), errno of the reopen (0 opened, -1 not tried), st_dev,
 * st_ino, st_mode. Returns 0, -ETIMEDOUT (child killed after timeout_ms;
 * out holds what it did) or -errno. */
int aegis_probe_open(const char *cgroup_procs, const uint8_t *paths, uint32_t len, uint32_t n,
		     int64_t *out, uint32_t timeout_ms);
/* Fork a child that moves into the cgroup of `cgroup_procs` and makes one
 * non-blocking TCP connect to addr_be (IPv4, network byte order):port.
 * out[0] errno of the cgroup move (as above), out[1] errno of the connect
 * (0 connected, EPERM denied, EINPROGRESS/ECONNREFUSED let through;
 * negative: no socket could be made). Returns 0, -ETIMEDOUT or -errno. */
int aegis_probe_connect(const char *cgroup_procs, uint32_t addr_be, uint32_t port, int64_t *out,
			uint32_t timeout_ms);
/* aegis_probe_kernel() attempts (ops bits). */
#define AEGIS_PROBE_PTRACE 1
#define AEGIS_PROBE_MODULE 2
#define AEGIS_PROBE_BPF 4
#define AEGIS_PROBE_KERNEL_ALL 7
/* Fork a child that moves into the cgroup of `cgroup_procs` and makes the
 * kernel-surface attempts in `ops`, each harmless if let through: PTRACE_ATTACH
 * to a grandchild of its own, init_module() of 64 zero bytes, bpf()
 * BPF_MAP_CREATE with a zero attribute. out[0] errno of the cgroup move
 * (as above); out[1..3] errno of the ptrace, module and bpf attempt (0 it
 * succeeded, -1 not asked, -2 could not be made). Returns 0, -ETIMEDOUT or
 * -errno. */
int aegis_probe_kernel(const char *cgroup_procs, uint32_t ops, int64_t *out, uint32_t timeout_ms);

#endif /* AEGIS_SHIM_H */
