/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis_abi.h — the single definition of everything that crosses
 * kernel (BPF programs) <-> C shim <-> TypeScript.
 *
 * Rules (see docs/architecture.md, "The ABI"):
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
	AEGIS_EV_FILE_BLOCK = 3,   /* file open/permission, exec of a denied binary */
	AEGIS_EV_NET_BLOCK = 4,    /* connect, bind, sendmsg */
	AEGIS_EV_KERNEL_BLOCK = 5, /* ptrace, module load, bpf() */
	AEGIS_EV_EXEC_ARGV = 6,    /* the new image's argv, after its AEGIS_EV_EXEC */
	AEGIS_EV_TAMPER_BLOCK = 7, /* self-protection: a tamper attempt on the agent (self.bpf.c) */
	AEGIS_EV_HASH_BLOCK = 8,   /* exec of a file whose content (sha256) is denied or not allowed */
};

/* Record versions (bumped whenever that record's layout changes). */
enum aegis_ev_version {
	/* 2: struct aegis_ev_proc gained parent_start_time */
	AEGIS_EV_EXEC_V2 = 2,
	AEGIS_EV_OPEN_V2 = 2,
	AEGIS_EV_FILE_BLOCK_V2 = 2,
	AEGIS_EV_NET_BLOCK_V2 = 2,
	AEGIS_EV_KERNEL_BLOCK_V2 = 2,
	AEGIS_EV_EXEC_ARGV_V1 = 1,
	AEGIS_EV_TAMPER_BLOCK_V1 = 1,
	AEGIS_EV_HASH_BLOCK_V1 = 1,
};

enum aegis_abi_sizes {
	AEGIS_COMM_LEN = 16,
	AEGIS_OPEN_PATH_LEN = 64,
	AEGIS_BLOCK_PATH_LEN = 256,
	AEGIS_ARGV_LEN = 1024, /* argv bytes an AEGIS_EV_EXEC_ARGV record holds */
	AEGIS_TAMPER_NAME_LEN = 64, /* name bytes of an AEGIS_EV_TAMPER_BLOCK record */
	AEGIS_SHA256_LEN = 32, /* digest bytes of a deny/allow_binary_hash rule */
	AEGIS_RULE_GENERATIONS = 2, /* rule sets that can coexist (see "gen" below) */
};

/* Slots of the per-CPU counter array "aegis_counters". */
enum aegis_counter {
	AEGIS_CNT_RINGBUF_DROPS = 0, /* bpf_ringbuf_reserve() failed */
	AEGIS_CNT_EVENTS = 1,        /* records submitted */
	AEGIS_CNT_FILE_DENY = 2,     /* lsm/file_open returned -EPERM */
	AEGIS_CNT_SURVIVAL_ALLOW = 3, /* a deny rule matched a survival-allowlisted inode */
	AEGIS_CNT_SIGNAL_SENT = 4,   /* bpf_send_signal() sent: signal fallback, or with a deny */
	AEGIS_CNT_KILL_ESCALATION = 5, /* of those, SIGKILLs sent by kill escalation */
	AEGIS_CNT_SIGNAL_FAILED = 6, /* a deny's signal refused by the kernel (still -EPERM) */
	AEGIS_CNT_HASH_UNKNOWN = 7,  /* exec_hash.bpf.c: no sha256 of the file (helper error or algo) */
	AEGIS_CNT_HASH_CACHED = 8,   /* exec_hash.bpf.c: a verified, unchanged file, not hashed again */
	AEGIS_CNT__MAX = 9,          /* size of the array; room to grow */
};

/* Hook ids: index of the per-CPU array "aegis_hook_stats" and the `hook`
 * field of block records. Never reuse a number. */
enum aegis_hook {
	AEGIS_HOOK_FILE_OPEN = 0,
	AEGIS_HOOK_INODE_PERMISSION = 1,
	AEGIS_HOOK_BPRM_CHECK = 2,
	AEGIS_HOOK_SOCKET_CONNECT = 3,
	AEGIS_HOOK_SOCKET_BIND = 4,
	AEGIS_HOOK_SOCKET_SENDMSG = 5,
	AEGIS_HOOK_PTRACE = 6,
	AEGIS_HOOK_KERNEL_READ_FILE = 7,
	AEGIS_HOOK_KERNEL_LOAD_DATA = 8,
	AEGIS_HOOK_BPF = 9,
	AEGIS_HOOK_TP_OPENAT = 10, /* audit/signal fallback tracepoints */
	AEGIS_HOOK_TP_EXECVE = 11,
	AEGIS_HOOK_TP_CONNECT = 12,
	AEGIS_HOOK_INODE_COPY_UP = 13, /* overlayfs copy-up of a ruled file (file.bpf.c) */
	AEGIS_HOOK_BPRM_HASH = 14, /* lsm.s/bprm_check_security: content (sha256) rules */
	AEGIS_HOOK_MMAP_HASH = 15, /* lsm.s/mmap_file with PROT_EXEC: content rules (loaders) */
	/* self-protection guards (self.bpf.c) */
	AEGIS_HOOK_SELF_UNLINK = 16,
	AEGIS_HOOK_SELF_RMDIR = 17,
	AEGIS_HOOK_SELF_RENAME = 18,
	AEGIS_HOOK_SELF_CREATE = 19, /* inode_create, inode_link, inode_symlink */
	AEGIS_HOOK_SELF_FILE_OPEN = 20,
	AEGIS_HOOK_SELF_TRUNCATE = 21,
	AEGIS_HOOK_SELF_BPF_MAP = 22,
	AEGIS_HOOK_SELF_BPF = 23,
	AEGIS_HOOK_SELF_PIN_OPEN = 24, /* inode_permission on a pinned link */
	AEGIS_HOOK_SELF_TASK_KILL = 25,
	AEGIS_HOOK_SELF_PTRACE = 26,
	AEGIS_HOOK_SELF_UMOUNT = 27,
	/* lsm/file_mprotect adding PROT_EXEC to a file mapping: allowed only for
	 * a file the mapping program verified (aegis_hash_verified) */
	AEGIS_HOOK_MPROTECT_HASH = 28,
	AEGIS_HOOK__MAX = 32,
};

/* What a hook did (the `action` field of block records). */
enum aegis_action {
	AEGIS_ACT_AUDIT = 0, /* would have blocked: audit mode, emergency disable, break-glass */
	AEGIS_ACT_BLOCK = 1, /* -EPERM returned */
	/* A signal sent: on an LSM hook with -EPERM (AEGIS_CFG_ENFORCE_SIGNAL),
	 * on a fallback tracepoint instead of a deny (AEGIS_CFG_SIGNAL). */
	AEGIS_ACT_TERM = 2,  /* SIGTERM sent */
	AEGIS_ACT_KILL = 3,  /* SIGKILL sent */
	AEGIS_ACT_INT = 4,   /* SIGINT sent */
};

/* aegis_rule.flags */
enum aegis_rule_flag {
	AEGIS_RULE_DENY = 1,    /* deny_path / deny_inode / deny_* */
	AEGIS_RULE_PROTECT = 2, /* protect_path / protect_connect: only verified processes */
	AEGIS_RULE_ALLOW = 4,   /* aegis_deny_hash: the content is on [allow_binary_hash] */
	/* block records only (rule_flags, rule_id 0): an exec denied because its
	 * content is not on [allow_binary_hash], or has no SHA-256 (unknown) */
	AEGIS_RULE_UNLISTED = 8,
	/* aegis_deny_hash: the content is on [trusted_exec_hash]. In a block
	 * record (with AEGIS_RULE_UNLISTED, rule_id 0): the content is not on
	 * [trusted_exec_hash] (untrusted), or has no SHA-256 under
	 * [ima_fail_closed] */
	AEGIS_RULE_TRUSTED = 16,
	/* block records only (rule_flags, rule_id 0, sha256 all zero): a file
	 * mapping made executable with mprotect whose content was not verified
	 * (no valid aegis_hash_verified entry): nothing can hash it there */
	AEGIS_RULE_UNVERIFIED = 32,
};

/* Which rule table matched (the `rule_type` field of block records). */
enum aegis_rule_type {
	AEGIS_RT_INODE = 1,
	AEGIS_RT_COMM = 2,
	AEGIS_RT_IP = 3,
	AEGIS_RT_CIDR = 4,
	AEGIS_RT_PORT = 5,
	AEGIS_RT_IP_PORT = 6,
	AEGIS_RT_PTRACE = 7,
	AEGIS_RT_MODULE = 8,
	AEGIS_RT_BPF = 9,
	AEGIS_RT_CG_IP = 10,    /* cgroup_deny_ip */
	AEGIS_RT_CG_PORT = 11,  /* cgroup_deny_port */
	AEGIS_RT_CG_INODE = 12, /* cgroup_deny_inode */
	AEGIS_RT_HASH = 13,     /* deny_binary_hash */
};

/* Bits of struct aegis_policy.flags (one policy per rule generation). */
enum aegis_policy_flag {
	AEGIS_POL_FILE_RULES = 1,   /* any inode rule: file hooks look up maps */
	AEGIS_POL_EXEC_RULES = 2,   /* any comm or binary rule */
	AEGIS_POL_NET_RULES = 4,    /* any network rule */
	AEGIS_POL_DENY_PTRACE = 8,
	AEGIS_POL_DENY_MODULE = 16,
	AEGIS_POL_DENY_BPF = 32,
	AEGIS_POL_CGROUP_RULES = 64, /* any cgroup-scoped rule (set with FILE/NET_RULES) */
	/*
	 * The network table bits below are complete: a table whose bit is
	 * clear holds no rule of this generation, and the hooks skip its
	 * lookup. Set only by whoever writes the whole flags word knowing every
	 * rule (a policy apply); without it (flags written by an older agent)
	 * every table is looked up. A live edit adds its table's bit.
	 */
	AEGIS_POL_NET_TABLES = 128,
	AEGIS_POL_NET_IP = 256,      /* aegis_deny_ip4 / aegis_deny_ip6 */
	AEGIS_POL_NET_CIDR = 512,    /* aegis_deny_cidr4 / aegis_deny_cidr6 */
	AEGIS_POL_NET_IP_PORT = 1024, /* aegis_deny_ip4_port / aegis_deny_ip6_port */
	AEGIS_POL_NET_PORT = 2048,   /* aegis_deny_port */
	/* deny_binary_hash rules in aegis_deny_hash: only then does the
	 * sleepable exec program hash the file (bpf/exec_hash.bpf.c) */
	AEGIS_POL_EXEC_HASH = 4096,
	/* a non-empty [allow_binary_hash]: the exec program hashes the file and
	 * denies every content not listed with AEGIS_RULE_ALLOW in
	 * aegis_deny_hash (docs/engine.md, "Exec identity by content") */
	AEGIS_POL_EXEC_ALLOWLIST = 8192,
	/* a non-empty [trusted_exec_hash]: the exec program hashes the file and
	 * denies every content not listed with AEGIS_RULE_TRUSTED */
	AEGIS_POL_EXEC_TRUSTED = 16384,
	/* [ima_fail_closed]: under EXEC_TRUSTED, a file with no SHA-256 is denied */
	AEGIS_POL_IMA_FAIL_CLOSED = 32768,
	/* [protect_runtime_deps]: the mapping program (lsm.s/mmap_file) applies
	 * the allowlist and the trusted list to every executable file mapping */
	AEGIS_POL_RUNTIME_DEPS = 65536,
};

/* Slots of the array "aegis_config" (values are __u64). */
enum aegis_config_key {
	AEGIS_CFG_TRACE_TGID = 0, /* 0: every process; else only this tgid */
	AEGIS_CFG_TRACE_ENABLE = 1, /* 0: tracepoints emit nothing */
	AEGIS_CFG_AUDIT_ONLY = 2,   /* 1: hooks never deny; they emit AUDIT records */
	AEGIS_CFG_EMERGENCY_DISABLE = 3, /* 1: kill switch (same effect as audit) */
	AEGIS_CFG_BREAK_GLASS = 4,  /* 1: break-glass at start (same effect as audit) */
	AEGIS_CFG_SIGNAL = 5,       /* signal fallback: signal number, 0 = off */
	AEGIS_CFG_GENERATION = 6,   /* active rule generation (0 or 1) */
	AEGIS_CFG_AGENT_CGID = 7,   /* the agent's own cgroup: never denied */
	AEGIS_CFG_LAYOUT = 8,       /* first 8 bytes of the ABI fingerprint of the pins */
	AEGIS_CFG_BTRFS_IDENTITY = 9, /* 1: the loaded programs key btrfs files by subvolume */
	AEGIS_CFG_LAZY_PENDING = 10, /* 1: telemetry records sit in the ring with no wakeup yet */
	AEGIS_CFG_EXEC_ARGV = 11,   /* 1: an AEGIS_EV_EXEC_ARGV record after each exec record */
	AEGIS_CFG_ENFORCE_SIGNAL = 12, /* LSM hooks: signal sent with a deny (2, 9, 15), 0 = none */
	/* kill escalation: bits 0-31 the strike threshold (0 = off), bits 32-63
	 * the window in ms; the threshold-th deny of one process within the
	 * window sends SIGKILL instead of AEGIS_CFG_ENFORCE_SIGNAL */
	AEGIS_CFG_KILL_ESCALATION = 13,
	AEGIS_CFG_CANARY_CGID = 14, /* the enforcement proof's cgroup: denied, never signalled */
	/* run --self-protect: 1 arms the guards of self.bpf.c (written 0 by every
	 * start without it and by a clean stop) */
	AEGIS_CFG_SELF_PROTECT = 15,
	/* bumped by every policy apply after its switch: entries of
	 * aegis_hash_verified stamped with another value are misses */
	AEGIS_CFG_HASH_EPOCH = 16,
	AEGIS_CFG__MAX = 17,
};

/* Bits of struct aegis_task_state.flags (the "verified" state of
 * protect_path and protect_connect, docs/policy.md). */
enum aegis_task_flag {
	AEGIS_TASK_VERIFIED = 1,    /* protect rules let this task through */
	AEGIS_TASK_INLINE_CODE = 2, /* unverified: -c/-e style inline code in argv */
	AEGIS_TASK_ARGV_CUT = 4,    /* unverified: argv longer than the bytes scanned */
};

/* Value of the task storage "aegis_task_state" (bpf/protect.bpf.c). A task
 * without one counts as unverified. */
struct aegis_task_state {
	__u32 flags;       /* enum aegis_task_flag: the image the task runs */
	__u32 exec_ok;     /* exec in progress: 1 while every checked file passed */
	__u32 exec_stages; /* exec in progress: bprm_check passes (2+: a script) */
	__u32 pad;         /* zero */
};

/* Key of "aegis_strikes" (kill escalation): one process, across pid reuse. */
struct aegis_strike_key {
	__u64 start_time; /* the thread group leader's task->start_time */
	__u32 tgid;
	__u32 pad;        /* zero */
};

/* Value of "aegis_strikes": the denies of one process in the current window. */
struct aegis_strikes {
	__u64 first_ns;   /* bpf_ktime_get_ns() of the window's first deny */
	__u32 count;      /* denies since first_ns */
	__u32 pad;        /* zero */
};

/* Common header of every ring-buffer record (16 bytes). */
struct aegis_ev_hdr {
	__u64 ktime_ns; /* bpf_ktime_get_ns() at emission */
	__u32 size;     /* total record size in bytes, header included */
	__u16 kind;     /* enum aegis_ev_kind */
	__u16 version;  /* enum aegis_ev_version */
};

/* Process identity shared by all process-scoped records (56 bytes). */
struct aegis_ev_proc {
	__u64 cgid;       /* bpf_get_current_cgroup_id() */
	__u64 start_time; /* task->start_time (ns since boot) */
	__u64 parent_start_time; /* real_parent->start_time */
	__u32 pid;        /* tgid */
	__u32 tid;
	__u32 ppid;       /* real_parent->tgid */
	__u32 uid;
	char comm[AEGIS_COMM_LEN];
};

/* AEGIS_EV_EXEC: sched/sched_process_exec (72 bytes). */
struct aegis_ev_exec {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
};

/*
 * AEGIS_EV_EXEC_ARGV: sched/sched_process_exec, after the AEGIS_EV_EXEC of
 * the same exec, when AEGIS_CFG_EXEC_ARGV is 1. The first `len` bytes of
 * the new image's argument area (mm->arg_start..arg_end): the arguments,
 * each ending in NUL; `total` > `len` when they were cut. Variable size:
 * only the used part of args is written, hdr.size = 80 + len rounded up to
 * 8 (at most 1104 bytes; the rounding bytes are zero).
 */
struct aegis_ev_exec_argv {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__u32 total; /* bytes of the argument area (capped at 2^32 - 1) */
	__u32 len;   /* bytes copied into args (0: the area could not be read) */
	char args[AEGIS_ARGV_LEN];
};

/* AEGIS_EV_OPEN: syscalls/sys_enter_openat (144 bytes). */
struct aegis_ev_open {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__s32 flags;  /* open flags as passed */
	__s32 dfd;    /* directory fd as passed */
	char path[AEGIS_OPEN_PATH_LEN]; /* user path, NUL-terminated, may be cut */
};

/*
 * Rule keys. Every policy rule key carries `gen`, the rule generation it
 * belongs to: a policy apply writes generation g' beside the live g, flips
 * AEGIS_CFG_GENERATION with one write, then deletes g. A hook reads the
 * generation once and looks up only that generation, so no rule is ever
 * absent during a switch. Keys not tied to a policy (survival allowlist)
 * use gen 0.
 */

/* File identity: kernel dev encoding (major << 20 | minor). */
struct aegis_inode_key {
	__u64 ino;
	__u32 dev;
	__u32 gen;
};

/* Value of every rule map. */
struct aegis_rule {
	__u32 rule_id; /* policy line or live-edit id, for "explain" */
	__u16 flags;   /* enum aegis_rule_flag */
	__u16 rule_type; /* enum aegis_rule_type */
};

struct aegis_comm_key {
	char comm[AEGIS_COMM_LEN];
	__u32 gen;
	__u32 pad; /* zero */
};

struct aegis_cgroup_key {
	__u64 cgid;
	__u32 gen;
	__u32 pad; /* zero */
};

/* Exact addresses; network byte order. */
struct aegis_ip4_key {
	__u32 gen;
	__u32 addr;
};

struct aegis_ip6_key {
	__u32 gen;
	__u8 addr[16];
};

/* LPM trie keys: prefixlen = 32 (the gen word) + CIDR prefix length. */
struct aegis_lpm4_key {
	__u32 prefixlen;
	__u32 gen;
	__u32 addr;
};

struct aegis_lpm6_key {
	__u32 prefixlen;
	__u32 gen;
	__u8 addr[16];
};

/* Ports: host byte order. proto 0 any, 6 tcp, 17 udp; dir 0 egress, 1 bind,
 * 2 both. A hook looks up (proto, dir) then the "any"/"both" variants. */
struct aegis_port_key {
	__u32 gen;
	__u16 port;
	__u8 proto;
	__u8 dir;
};

struct aegis_ip4_port_key {
	__u32 gen;
	__u32 addr;
	__u16 port;
	__u8 proto;
	__u8 pad; /* zero */
};

struct aegis_ip6_port_key {
	__u32 gen;
	__u8 addr[16];
	__u16 port;
	__u8 proto;
	__u8 pad; /* zero */
};

/*
 * Cgroup-scoped rules (policy version 6): they apply only to processes in
 * that cgroup (v2 id), and a global allow_cgroup does not waive them.
 */
struct aegis_cg_inode_key {
	__u64 cgid;
	__u64 ino;
	__u32 dev;
	__u32 gen;
};

struct aegis_cg_ip_key {
	__u64 cgid;
	__u32 gen;
	__u8 family; /* 2 or 10 */
	__u8 pad[3]; /* zero */
	__u8 addr[16]; /* network byte order; IPv4 in the first 4 bytes, rest zero */
};

struct aegis_cg_port_key {
	__u64 cgid;
	__u32 gen;
	__u16 port;  /* host byte order */
	__u8 proto;  /* 0 any, 6, 17 */
	__u8 dir;    /* 0 egress, 1 bind, 2 both */
};

/* deny_binary_hash and allow_binary_hash (policy version 3): a file's
 * SHA-256, as IMA computes it; the rule's flags say DENY or ALLOW. */
struct aegis_hash_key {
	__u8 sha256[AEGIS_SHA256_LEN];
	__u32 gen;
	__u32 pad; /* zero */
};

/*
 * aegis_hash_verified (bpf/exec_hash.bpf.c): a file the exec or mapping
 * program hashed and did not deny, by what identifies its content without
 * hashing it again: the inode (dev, ino as in aegis_inode_key, and i_generation)
 * and its ctime and size, which every write changes (docs/engine.md,
 * "mprotect(PROT_EXEC)").
 */
struct aegis_verified_key {
	__u64 ino;
	__u64 ctime_sec;
	__u64 size;
	__u32 ctime_nsec;
	__u32 dev;
	__u32 i_generation;
	__u32 pad; /* zero */
};

/* aegis_verified_key's value: the policy and lists that allowed it, and the state. */
struct aegis_verified {
	__u64 epoch; /* AEGIS_CFG_HASH_EPOCH when the program started */
	__u32 gen;   /* the rule generation it was checked against */
	__u32 state; /* enum aegis_verified_state */
	__u32 lists; /* the AEGIS_ID_LIST_* bits it was checked against (lib/exec_identity.h) */
	__u32 pad;   /* zero */
};

enum aegis_verified_state {
	AEGIS_VERIFIED_PENDING = 1, /* being hashed: a write-open deletes it */
	AEGIS_VERIFIED_OK = 2,      /* hashed, not denied, no writer seen */
};

/* Per-generation policy switches (array "aegis_policy", index = gen). */
struct aegis_policy {
	__u64 flags; /* enum aegis_policy_flag */
};

/* Per-hook statistics (per-CPU array "aegis_hook_stats", index = hook). */
struct aegis_hook_stat {
	__u64 invocations;
	__u64 blocks;      /* -EPERM returned or signal sent */
	__u64 audits;      /* would have blocked */
	__u64 latency_ns;  /* summed bpf_ktime_get_ns() deltas of rule-checking invocations */
};

/* AEGIS_EV_FILE_BLOCK (352 bytes). */
struct aegis_ev_file_block {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__u64 ino;
	__u32 dev;
	__u32 rule_id;
	__u16 rule_flags;
	__u8 action;  /* enum aegis_action */
	__u8 hook;    /* enum aegis_hook */
	__u32 pad;    /* zero */
	char path[AEGIS_BLOCK_PATH_LEN]; /* resolved path when known, else "" */
};

/* AEGIS_EV_HASH_BLOCK (384 bytes): an exec, or an executable mapping,
 * denied by deny_binary_hash, or whose content is not on
 * [allow_binary_hash] (rule_id 0, rule_flags AEGIS_RULE_UNLISTED) or not on
 * [trusted_exec_hash] (rule_id 0, rule_flags AEGIS_RULE_UNLISTED |
 * AEGIS_RULE_TRUSTED); sha256 all zero when the file had no SHA-256; a
 * mapping only under AEGIS_POL_RUNTIME_DEPS for the two lists; the fields of
 * AEGIS_EV_FILE_BLOCK (hook AEGIS_HOOK_BPRM_HASH, _MMAP_HASH or
 * _MPROTECT_HASH; rule_type implied) and the digest. A mprotect record has
 * no digest (all zero) and rule_flags AEGIS_RULE_UNVERIFIED, rule_id 0. */
struct aegis_ev_hash_block {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__u64 ino;
	__u32 dev;
	__u32 rule_id;
	__u16 rule_flags;
	__u8 action;  /* enum aegis_action */
	__u8 hook;    /* enum aegis_hook */
	__u32 pad;    /* zero */
	__u8 sha256[AEGIS_SHA256_LEN];
	char path[AEGIS_BLOCK_PATH_LEN]; /* bprm->filename; for a mapping, the file's name */
};

/* AEGIS_EV_NET_BLOCK (104 bytes). */
struct aegis_ev_net_block {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__u8 addr[16]; /* IPv4 in the first 4 bytes; network byte order */
	__u32 rule_id;
	__u16 port;    /* host byte order */
	__u8 family;   /* 2 AF_INET, 10 AF_INET6 */
	__u8 proto;    /* 6 tcp, 17 udp, 0 other */
	__u8 action;
	__u8 hook;
	__u8 rule_type; /* enum aegis_rule_type */
	__u8 pad[5];   /* zero */
};

/* AEGIS_EV_KERNEL_BLOCK (96 bytes). */
struct aegis_ev_kernel_block {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__u32 target_pid; /* ptrace target tgid, else 0 */
	__u32 detail;     /* bpf(): command; kernel_read_file: id; load_data: id */
	__u32 rule_id;
	__u8 action;
	__u8 hook;
	__u8 rule_type;
	__u8 pad;         /* zero */
	__u64 pad2;       /* zero */
};

/*
 * Self-protection (bpf/self.bpf.c, run --self-protect). What a guarded
 * inode is (value of "aegis_self_inode", key: struct aegis_inode_key with
 * gen 0). A directory guards its entries (created, opened for writing,
 * truncated, unlinked, renamed) and itself (rmdir, rename).
 */
enum aegis_guard {
	AEGIS_GUARD_PIN_DIR = 1,    /* the pin root, maps/, links/ */
	AEGIS_GUARD_STATE_DIR = 2,  /* /var/lib/aegisbpf */
	AEGIS_GUARD_CONFIG_DIR = 3, /* /etc/aegisbpf and its directories (keys) */
	AEGIS_GUARD_CGROUP_DIR = 4, /* the agent's own cgroup (cgroup.procs, cgroup.kill…) */
	AEGIS_GUARD_EXE = 5,        /* the agent's executable: trusted, and never written */
	AEGIS_GUARD_LINK_PIN = 6,   /* a pinned link: not even opened from outside */
	AEGIS_GUARD_PIN_FS = 7,     /* key (dev of the bpffs, ino 0): never unmounted */
	AEGIS_GUARD_MAP = 8,        /* "aegis_self_obj": a map id, no write fd from outside */
	AEGIS_GUARD_LINK = 9,       /* "aegis_self_obj": a link id, no fd from outside */
	AEGIS_GUARD_AGENT = 10,     /* a process of the agent (signals, ptrace) */
	AEGIS_GUARD_RUN_DIR = 11,   /* /run/aegisbpf: the control socket, the shim's copy */
};

/* What was attempted (the `op` field of AEGIS_EV_TAMPER_BLOCK). */
enum aegis_tamper_op {
	AEGIS_TAMPER_UNLINK = 1,
	AEGIS_TAMPER_RMDIR = 2,
	AEGIS_TAMPER_RENAME = 3,
	AEGIS_TAMPER_CREATE = 4,   /* create, link or symlink in a guarded directory */
	AEGIS_TAMPER_WRITE = 5,    /* open for writing (or O_TRUNC) */
	AEGIS_TAMPER_TRUNCATE = 6, /* truncate(2) */
	AEGIS_TAMPER_MAP_WRITE = 7, /* a writable fd of one of our maps */
	AEGIS_TAMPER_LINK_FD = 8,  /* an fd of one of our links (by id or by its pin) */
	AEGIS_TAMPER_SIGNAL = 9,
	AEGIS_TAMPER_PTRACE = 10,
	AEGIS_TAMPER_UMOUNT = 11,
};

/* Key of "aegis_self_obj": one of our maps or links by kernel id. */
struct aegis_self_obj_key {
	__u32 id;
	__u32 guard; /* AEGIS_GUARD_MAP or AEGIS_GUARD_LINK */
};

/* AEGIS_EV_TAMPER_BLOCK (168 bytes): the actor is `proc`. */
struct aegis_ev_tamper_block {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	__u64 ino;        /* the guarded inode (file ops), else 0 */
	__u64 target_cgid; /* signal, ptrace: the target's cgroup; else 0 */
	__u32 dev;        /* its dev (kernel encoding), else 0 */
	__u32 target;     /* map or link id; signal/ptrace: target tgid */
	__u32 detail;     /* signal number, fmode, ptrace mode, bpf cmd, open flags */
	__u8 op;          /* enum aegis_tamper_op */
	__u8 guard;       /* enum aegis_guard that matched */
	__u8 action;      /* enum aegis_action: BLOCK, or AUDIT (emergency, break-glass) */
	__u8 hook;        /* enum aegis_hook */
	char name[AEGIS_TAMPER_NAME_LEN]; /* the entry's name (file ops), else "" */
};

/*
 * Every type above, by value, so that clang emits all of them into BTF: the
 * BPF object references it from an uncalled function (bpf/aegis.bpf.c) and
 * build/gen_abi.ts from a variable. Add each new ABI type here.
 */
struct aegis_abi_anchor {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	struct aegis_ev_exec exec;
	struct aegis_ev_exec_argv exec_argv;
	struct aegis_ev_open open;
	struct aegis_ev_file_block file_block;
	struct aegis_ev_net_block net_block;
	struct aegis_ev_kernel_block kernel_block;
	struct aegis_ev_tamper_block tamper_block;
	struct aegis_self_obj_key self_obj_key;
	struct aegis_ev_hash_block hash_block;
	struct aegis_inode_key inode_key;
	struct aegis_rule rule;
	struct aegis_comm_key comm_key;
	struct aegis_cgroup_key cgroup_key;
	struct aegis_ip4_key ip4_key;
	struct aegis_ip6_key ip6_key;
	struct aegis_lpm4_key lpm4_key;
	struct aegis_lpm6_key lpm6_key;
	struct aegis_port_key port_key;
	struct aegis_ip4_port_key ip4_port_key;
	struct aegis_ip6_port_key ip6_port_key;
	struct aegis_cg_inode_key cg_inode_key;
	struct aegis_cg_ip_key cg_ip_key;
	struct aegis_cg_port_key cg_port_key;
	struct aegis_hash_key hash_key;
	struct aegis_verified_key verified_key;
	struct aegis_verified verified;
	struct aegis_policy policy;
	struct aegis_hook_stat hook_stat;
	struct aegis_task_state task_state;
	struct aegis_strike_key strike_key;
	struct aegis_strikes strikes;
	enum aegis_ev_kind kind;
	enum aegis_ev_version version;
	enum aegis_abi_sizes sizes;
	enum aegis_counter counter;
	enum aegis_config_key config_key;
	enum aegis_hook hook;
	enum aegis_action action;
	enum aegis_rule_flag rule_flag;
	enum aegis_rule_type rule_type;
	enum aegis_policy_flag policy_flag;
	enum aegis_task_flag task_flag;
	enum aegis_guard guard;
	enum aegis_tamper_op tamper_op;
	enum aegis_verified_state verified_state;
};

#define AEGIS_ASSERT_SIZE(type, n) _Static_assert(sizeof(type) == (n), #type " size")
#define AEGIS_ASSERT_OFF(type, field, n) \
	_Static_assert(__builtin_offsetof(type, field) == (n), #type "." #field " offset")

AEGIS_ASSERT_SIZE(struct aegis_ev_hdr, 16);
AEGIS_ASSERT_OFF(struct aegis_ev_hdr, size, 8);
AEGIS_ASSERT_OFF(struct aegis_ev_hdr, kind, 12);
AEGIS_ASSERT_OFF(struct aegis_ev_hdr, version, 14);
AEGIS_ASSERT_SIZE(struct aegis_ev_proc, 56);
AEGIS_ASSERT_OFF(struct aegis_ev_proc, start_time, 8);
AEGIS_ASSERT_OFF(struct aegis_ev_proc, parent_start_time, 16);
AEGIS_ASSERT_OFF(struct aegis_ev_proc, pid, 24);
AEGIS_ASSERT_OFF(struct aegis_ev_proc, comm, 40);
AEGIS_ASSERT_SIZE(struct aegis_ev_exec, 72);
AEGIS_ASSERT_OFF(struct aegis_ev_exec, proc, 16);
AEGIS_ASSERT_SIZE(struct aegis_ev_exec_argv, 1104);
AEGIS_ASSERT_OFF(struct aegis_ev_exec_argv, total, 72);
AEGIS_ASSERT_OFF(struct aegis_ev_exec_argv, args, 80);
AEGIS_ASSERT_SIZE(struct aegis_ev_open, 144);
AEGIS_ASSERT_OFF(struct aegis_ev_open, flags, 72);
AEGIS_ASSERT_OFF(struct aegis_ev_open, path, 80);
AEGIS_ASSERT_SIZE(struct aegis_inode_key, 16);
AEGIS_ASSERT_OFF(struct aegis_inode_key, dev, 8);
AEGIS_ASSERT_OFF(struct aegis_inode_key, gen, 12);
AEGIS_ASSERT_SIZE(struct aegis_rule, 8);
AEGIS_ASSERT_SIZE(struct aegis_comm_key, 24);
AEGIS_ASSERT_SIZE(struct aegis_cgroup_key, 16);
AEGIS_ASSERT_SIZE(struct aegis_ip4_key, 8);
AEGIS_ASSERT_SIZE(struct aegis_ip6_key, 20);
AEGIS_ASSERT_SIZE(struct aegis_lpm4_key, 12);
AEGIS_ASSERT_SIZE(struct aegis_lpm6_key, 24);
AEGIS_ASSERT_SIZE(struct aegis_port_key, 8);
AEGIS_ASSERT_SIZE(struct aegis_ip4_port_key, 12);
AEGIS_ASSERT_SIZE(struct aegis_ip6_port_key, 24);
AEGIS_ASSERT_SIZE(struct aegis_cg_inode_key, 24);
AEGIS_ASSERT_SIZE(struct aegis_cg_ip_key, 32);
AEGIS_ASSERT_OFF(struct aegis_cg_ip_key, addr, 16);
AEGIS_ASSERT_SIZE(struct aegis_cg_port_key, 16);
AEGIS_ASSERT_SIZE(struct aegis_policy, 8);
AEGIS_ASSERT_SIZE(struct aegis_hook_stat, 32);
AEGIS_ASSERT_SIZE(struct aegis_task_state, 16);
AEGIS_ASSERT_SIZE(struct aegis_strike_key, 16);
AEGIS_ASSERT_OFF(struct aegis_strike_key, tgid, 8);
AEGIS_ASSERT_SIZE(struct aegis_strikes, 16);
AEGIS_ASSERT_OFF(struct aegis_strikes, count, 8);
AEGIS_ASSERT_SIZE(struct aegis_ev_file_block, 352);
AEGIS_ASSERT_OFF(struct aegis_ev_file_block, ino, 72);
AEGIS_ASSERT_OFF(struct aegis_ev_file_block, path, 96);
AEGIS_ASSERT_SIZE(struct aegis_hash_key, 40);
AEGIS_ASSERT_OFF(struct aegis_hash_key, gen, 32);
AEGIS_ASSERT_SIZE(struct aegis_verified_key, 40);
AEGIS_ASSERT_OFF(struct aegis_verified_key, ctime_nsec, 24);
AEGIS_ASSERT_SIZE(struct aegis_verified, 24);
AEGIS_ASSERT_SIZE(struct aegis_ev_hash_block, 384);
AEGIS_ASSERT_OFF(struct aegis_ev_hash_block, ino, 72);
AEGIS_ASSERT_OFF(struct aegis_ev_hash_block, sha256, 96);
AEGIS_ASSERT_OFF(struct aegis_ev_hash_block, path, 128);
AEGIS_ASSERT_SIZE(struct aegis_ev_net_block, 104);
AEGIS_ASSERT_OFF(struct aegis_ev_net_block, addr, 72);
AEGIS_ASSERT_OFF(struct aegis_ev_net_block, port, 92);
AEGIS_ASSERT_SIZE(struct aegis_ev_kernel_block, 96);
AEGIS_ASSERT_OFF(struct aegis_ev_kernel_block, target_pid, 72);
AEGIS_ASSERT_SIZE(struct aegis_ev_tamper_block, 168);
AEGIS_ASSERT_OFF(struct aegis_ev_tamper_block, ino, 72);
AEGIS_ASSERT_OFF(struct aegis_ev_tamper_block, dev, 88);
AEGIS_ASSERT_OFF(struct aegis_ev_tamper_block, op, 100);
AEGIS_ASSERT_OFF(struct aegis_ev_tamper_block, name, 104);
AEGIS_ASSERT_SIZE(struct aegis_self_obj_key, 8);

#endif /* AEGIS_ABI_H */
