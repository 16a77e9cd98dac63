/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis_abi.h — the single definition of everything that crosses
 * kernel (BPF programs) <-> C shim <-> TypeScript.
 *
 * Rules (see docs/abi.md):
 *  - fixed-width types only, no bool, no implicit padding (every pad is a
 *    named, zeroed field), largest fields first;
 *  - every ring-buffer record starts with struct aegis_ev_hdr;
 *  - event kind numbers are never reused; a layout change bumps the
 *    record's version;
 *  - sizes and offsets are pinned with _Static_assert below, and the
 *    TypeScript codecs in src/bpf/abi_gen.ts are generated from the BTF of
 *    the compiled object (build/gen_abi.ts), so they cannot drift silently.
 *
 * This header is included by BPF C (after vmlinux.h, which provides the
 * __u8..__u64 types) and by the user-space shim (after <linux/types.h>).
 */
#ifndef AEGIS_ABI_H
#define AEGIS_ABI_H

#define AEGIS_ABI_VERSION 1

/* Ring-buffer record kinds. Never reuse a number. */
enum aegis_ev_kind {
	AEGIS_EV_EXEC = 1,
	AEGIS_EV_OPEN = 2,
};

/* Record versions (bumped whenever that record's layout changes). */
enum aegis_ev_version {
	AEGIS_EV_EXEC_V1 = 1,
	AEGIS_EV_OPEN_V1 = 1,
};

enum aegis_abi_sizes {
	AEGIS_COMM_LEN = 16,
	AEGIS_OPEN_PATH_LEN = 64,
};

/* Slots of the per-CPU counter array "aegis_counters". */
enum aegis_counter {
	AEGIS_CNT_RINGBUF_DROPS = 0, /* bpf_ringbuf_reserve() failed */
	AEGIS_CNT_EVENTS = 1,        /* records submitted */
	AEGIS_CNT_FILE_DENY = 2,     /* lsm/file_open returned -EPERM */
	AEGIS_CNT__MAX = 8,          /* size of the array; room to grow */
};

/* Slots of the array "aegis_config" (values are __u64). */
enum aegis_config_key {
	AEGIS_CFG_TRACE_TGID = 0, /* 0: every process; else only this tgid */
	AEGIS_CFG_TRACE_ENABLE = 1, /* 0: tracepoints emit nothing */
	AEGIS_CFG__MAX = 8,
};

/* Common header of every ring-buffer record (16 bytes). */
struct aegis_ev_hdr {
	__u64 ktime_ns; /* bpf_ktime_get_ns() at emission */
	__u32 size;     /* total record size in bytes, header included */
	__u16 kind;     /* enum aegis_ev_kind */
	__u16 version;  /* enum aegis_ev_version */
};

/* Process identity shared by all process-scoped records (48 bytes). */
struct aegis_ev_proc {
	__u64 cgid;       /* bpf_get_current_cgroup_id() */
	__u64 start_time; /* task->start_time (ns since boot) */
	__u32 pid;        /* tgid */
	__u32 tid;
	__u32 ppid;       /* real_parent->tgid */
	__u32 uid;
	char comm[AEGIS_COMM_LEN];
};

/* AEGIS_EV_EXEC: sched/sched_process_exec (64 bytes). */
struct aegis_ev_exec {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
};

/* AEGIS_EV_OPEN: syscalls/sys_enter_openat (136 bytes). */
struct aegis_ev_open {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__s32 flags;  /* open flags as passed */
	__s32 dfd;    /* directory fd as passed */
	char path[AEGIS_OPEN_PATH_LEN]; /* user path, NUL-terminated, may be cut */
};

/* File identity: kernel dev encoding (major << 20 | minor). */
struct aegis_inode_key {
	__u64 ino;
	__u32 dev;
	__u32 pad; /* must be zero */
};

#define AEGIS_ASSERT_SIZE(type, n) _Static_assert(sizeof(type) == (n), #type " size")
#define AEGIS_ASSERT_OFF(type, field, n) \
	_Static_assert(__builtin_offsetof(type, field) == (n), #type "." #field " offset")

AEGIS_ASSERT_SIZE(struct aegis_ev_hdr, 16);
AEGIS_ASSERT_OFF(struct aegis_ev_hdr, size, 8);
AEGIS_ASSERT_OFF(struct aegis_ev_hdr, kind, 12);
AEGIS_ASSERT_OFF(struct aegis_ev_hdr, version, 14);
AEGIS_ASSERT_SIZE(struct aegis_ev_proc, 48);
AEGIS_ASSERT_OFF(struct aegis_ev_proc, start_time, 8);
AEGIS_ASSERT_OFF(struct aegis_ev_proc, pid, 16);
AEGIS_ASSERT_OFF(struct aegis_ev_proc, comm, 32);
AEGIS_ASSERT_SIZE(struct aegis_ev_exec, 64);
AEGIS_ASSERT_OFF(struct aegis_ev_exec, proc, 16);
AEGIS_ASSERT_SIZE(struct aegis_ev_open, 136);
AEGIS_ASSERT_OFF(struct aegis_ev_open, flags, 64);
AEGIS_ASSERT_OFF(struct aegis_ev_open, path, 72);
AEGIS_ASSERT_SIZE(struct aegis_inode_key, 16);
AEGIS_ASSERT_OFF(struct aegis_inode_key, dev, 8);

#endif /* AEGIS_ABI_H */
