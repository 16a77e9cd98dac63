/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis_maps.h — the maps shared by every program set. The whole object is
 * one translation unit (bpf/aegis.bpf.c), so each map is defined once.
 * Names are ABI: user space finds them by name.
 */
#ifndef AEGIS_MAPS_H
#define AEGIS_MAPS_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#include "aegis_abi.h"

/* Event records (struct aegis_ev_*). Default 4 MiB; user space may resize
 * it before load (power of two, multiple of the page size). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} aegis_events SEC(".maps");

/* enum aegis_counter slots, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AEGIS_CNT__MAX);
	__type(key, __u32);
	__type(value, __u64);
} aegis_counters SEC(".maps");

/* enum aegis_config_key slots, written by user space. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AEGIS_CFG__MAX);
	__type(key, __u32);
	__type(value, __u64);
} aegis_config SEC(".maps");

/* Per-generation policy switches (index = gen). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, AEGIS_RULE_GENERATIONS);
	__type(key, __u32);
	__type(value, struct aegis_policy);
} aegis_policy SEC(".maps");

/* Where an AEGIS_EV_EXEC_ARGV record is built (bpf/trace.bpf.c) before its
 * used part is copied into aegis_events: the ring holds 80 + len bytes, not
 * the whole 1104. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct aegis_ev_exec_argv);
} aegis_argv_scratch SEC(".maps");

/* enum aegis_hook slots, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, AEGIS_HOOK__MAX);
	__type(key, __u32);
	__type(value, struct aegis_hook_stat);
} aegis_hook_stats SEC(".maps");

/*
 * Rule maps. Default sizes hold 2 generations of a typical policy; user
 * space resizes them before load. Every key carries its generation.
 */

/* deny_path / deny_inode / protect_path: inodes (value flags say which). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct aegis_inode_key);
	__type(value, struct aegis_rule);
} aegis_deny_inode SEC(".maps");

/* Survival allowlist: inodes that can never be denied (gen 0 keys). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct aegis_inode_key);
	__type(value, __u32);
} aegis_survival_inode SEC(".maps");

/* allow_cgroup: processes in these cgroups skip global rules. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aegis_cgroup_key);
	__type(value, struct aegis_rule);
} aegis_allow_cgroup SEC(".maps");

/* The per-task "verified" state (bpf/protect.bpf.c, lib/verified.h). */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct aegis_task_state);
} aegis_task_state SEC(".maps");

/* cgroup_deny_inode / cgroup_deny_ip / cgroup_deny_port (policy v6). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct aegis_cg_inode_key);
	__type(value, struct aegis_rule);
} aegis_cg_deny_inode SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct aegis_cg_ip_key);
	__type(value, struct aegis_rule);
} aegis_cg_deny_ip SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aegis_cg_port_key);
	__type(value, struct aegis_rule);
} aegis_cg_deny_port SEC(".maps");

/* deny_comm (exec). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aegis_comm_key);
	__type(value, struct aegis_rule);
} aegis_deny_comm SEC(".maps");

/* deny_ip (exact). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct aegis_ip4_key);
	__type(value, struct aegis_rule);
} aegis_deny_ip4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct aegis_ip6_key);
	__type(value, struct aegis_rule);
} aegis_deny_ip6 SEC(".maps");

/* deny_cidr (longest prefix match). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct aegis_lpm4_key);
	__type(value, struct aegis_rule);
} aegis_deny_cidr4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 32768);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct aegis_lpm6_key);
	__type(value, struct aegis_rule);
} aegis_deny_cidr6 SEC(".maps");

/* deny_port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aegis_port_key);
	__type(value, struct aegis_rule);
} aegis_deny_port SEC(".maps");

/* deny_ip_port. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct aegis_ip4_port_key);
	__type(value, struct aegis_rule);
} aegis_deny_ip4_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct aegis_ip6_port_key);
	__type(value, struct aegis_rule);
} aegis_deny_ip6_port SEC(".maps");

/* deny_binary_hash (exec_hash.bpf.c); sleepable programs may use hash maps. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aegis_hash_key);
	__type(value, struct aegis_rule);
} aegis_deny_hash SEC(".maps");

/*
 * Files whose content the exec or mapping program (lsm.s/bprm_check_security,
 * lsm.s/mmap_file) hashed and did not deny: for the non-sleepable
 * lsm/file_mprotect program, which cannot hash, and for those two programs,
 * which do not hash an unchanged file twice under one policy
 * (exec_hash.bpf.c). LRU: a full cache forgets the files verified longest
 * ago (a forgotten file is a miss: it is hashed again at its next exec or
 * mapping, and its mprotect is refused until then).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct aegis_verified_key);
	__type(value, struct aegis_verified);
} aegis_hash_verified SEC(".maps");

/*
 * Kill escalation (run --kill-escalation, lib/decide.h aegis_deny_signal):
 * denies per process in the current window. Written only after a deny with
 * escalation on; LRU, so a full map forgets the processes denied longest
 * ago instead of refusing a new one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct aegis_strike_key);
	__type(value, struct aegis_strikes);
} aegis_strikes SEC(".maps");

/*
 * Self-protection (bpf/self.bpf.c): what the guards protect, filled by the
 * agent after it pinned (src/bpf/self_guard.ts). Gen-0 inode keys.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct aegis_inode_key);
	__type(value, __u32); /* enum aegis_guard */
} aegis_self_inode SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct aegis_self_obj_key);
	__type(value, __u32); /* enum aegis_guard */
} aegis_self_obj SEC(".maps");

#endif /* AEGIS_MAPS_H */
