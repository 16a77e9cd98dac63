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

/* Inodes whose open is denied by lsm/file_open. Value: reserved, write 1. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct aegis_inode_key);
	__type(value, __u32);
} aegis_deny_inode SEC(".maps");

#endif /* AEGIS_MAPS_H */
