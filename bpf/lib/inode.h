/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * inode.h — the file decision shared by lsm/file_open, lsm/inode_permission
 * and the binary check of lsm/bprm_check_security. Order (docs/engine.md, "Decision order"):
 * no file rules → allow; survival allowlist → allow; the agent's own
 * cgroup or a globally allowed cgroup → allow; a deny rule → block (or
 * audit); a protect-only rule → allow a verified task (lib/verified.h),
 * else block (or audit). Deny beats protect.
 */
#ifndef AEGIS_LIB_INODE_H
#define AEGIS_LIB_INODE_H

#include <bpf/bpf_core_read.h>

#include "decide.h"
#include "event.h"
#include "verified.h"

/* include/uapi/linux/magic.h */
#define AEGIS_BTRFS_SUPER_MAGIC 0x9123683EUL

/*
 * btrfs types live in the btrfs module's BTF, not vmlinux: libbpf relocates
 * these local definitions against /sys/kernel/btf/btrfs when the module is
 * loaded at load time. When it is not (or the fields moved), the
 * bpf_core_*_exists() guards below are constant 0 and the btrfs branch is
 * dead code the verifier never walks.
 */
struct btrfs_root___aegis {
	dev_t anon_dev;
} __attribute__((preserve_access_index));

struct btrfs_inode___aegis {
	struct btrfs_root___aegis *root;
	struct inode vfs_inode;
} __attribute__((preserve_access_index));

/* Are the btrfs types there (constant at load time: dead code when not)? */
#define AEGIS_BTRFS_TYPES                                                          \
	(bpf_core_type_exists(struct btrfs_inode___aegis) &&                       \
	 bpf_core_field_exists(struct btrfs_inode___aegis, root) &&                \
	 bpf_core_field_exists(struct btrfs_inode___aegis, vfs_inode) &&           \
	 bpf_core_field_exists(struct btrfs_root___aegis, anon_dev))

/* btrfs: BTRFS_I(inode)->root->anon_dev. Probe reads: the containing
 * struct lies before the BTF pointer, where direct loads may not go. */
static __always_inline __u32 aegis_btrfs_dev(struct inode *inode)
{
	struct btrfs_inode___aegis *bi =
		(void *)((char *)inode - bpf_core_field_offset(struct btrfs_inode___aegis, vfs_inode));

	return BPF_CORE_READ(bi, root, anon_dev);
}

/*
 * A file's identity, (dev, ino), for an inode that is a BTF pointer (an LSM
 * or tp_btf argument, or a field reached from one): direct loads, which the
 * verifier turns into fault-safe loads without a helper call. The device
 * half is the superblock's s_dev on every file system but btrfs: one
 * superblock holds every subvolume and snapshot, and inode numbers repeat
 * in each, so the key takes the subvolume's anonymous device (what stat()
 * reports as st_dev) — docs/engine.md, "File identity per file system".
 */
static __always_inline void aegis_inode_key_of(struct aegis_inode_key *k, struct inode *inode,
					       __u32 gen)
{
	struct super_block *sb = inode->i_sb;

	k->ino = inode->i_ino;
	k->dev = AEGIS_BTRFS_TYPES && sb->s_magic == AEGIS_BTRFS_SUPER_MAGIC
			 ? aegis_btrfs_dev(inode)
			 : sb->s_dev;
	k->gen = gen;
}

/* The same for an inode pointer that is a plain number (read with a probe
 * read: the fallback's tracepoints). */
static __always_inline void aegis_inode_key_of_read(struct aegis_inode_key *k,
						    struct inode *inode, __u32 gen)
{
	struct super_block *sb = BPF_CORE_READ(inode, i_sb);

	k->ino = BPF_CORE_READ(inode, i_ino);
	k->dev = AEGIS_BTRFS_TYPES && BPF_CORE_READ(sb, s_magic) == AEGIS_BTRFS_SUPER_MAGIC
			 ? aegis_btrfs_dev(inode)
			 : BPF_CORE_READ(sb, s_dev);
	k->gen = gen;
}

/* Reserve a file block record with everything but the path filled in;
 * NULL when the ring is full (counted). The caller submits it. */
/*
 * The fields a file block and a hash block share (struct aegis_ev_file_block
 * and struct aegis_ev_hash_block lay them out alike), on a zeroed record.
 */
#define AEGIS_FILL_BLOCK_FIELDS(ev, hc, k, r, act)                                                 \
	do {                                                                                       \
		aegis_fill_proc(&(ev)->proc);                                                      \
		(ev)->ino = (k)->ino;                                                              \
		(ev)->dev = (k)->dev;                                                              \
		(ev)->rule_id = (r)->rule_id;                                                      \
		(ev)->rule_flags = (r)->flags;                                                     \
		(ev)->action = (act);                                                              \
		(ev)->hook = (__u8)(hc)->hook;                                                     \
	} while (0)

static __always_inline struct aegis_ev_file_block *
aegis_file_block_new(struct aegis_hook_ctx *hc, struct aegis_inode_key *k, struct aegis_rule *r,
		     __u8 action)
{
	struct aegis_ev_file_block *ev = aegis_ev_reserve(sizeof(*ev));

	if (!ev)
		return 0;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_FILE_BLOCK, AEGIS_EV_FILE_BLOCK_V2);
	AEGIS_FILL_BLOCK_FIELDS(ev, hc, k, r, action);
	return ev;
}

static __always_inline void aegis_emit_file_block(struct aegis_hook_ctx *hc,
						  struct aegis_inode_key *k, struct aegis_rule *r,
						  __u8 action)
{
	struct aegis_ev_file_block *ev = aegis_file_block_new(hc, k, r, action);

	if (ev)
		aegis_ev_submit(ev);
}

/*
 * A global rule matched the inode in k: is it waived? The survival
 * allowlist (counted) or the agent's own / a globally allowed cgroup.
 * k->gen is the hook's generation again on return.
 */
static __always_inline int aegis_inode_exempt(struct aegis_hook_ctx *hc, struct aegis_inode_key *k)
{
	k->gen = 0;
	if (bpf_map_lookup_elem(&aegis_survival_inode, k)) {
		aegis_count(AEGIS_CNT_SURVIVAL_ALLOW);
		k->gen = hc->gen;
		return 1;
	}
	k->gen = hc->gen;
	return aegis_cgroup_allowed(hc->gen);
}

/* The cgroup-scoped rule for the inode in k and the current cgroup, if the
 * generation has any (deny, or protect for an unverified task). */
static __always_inline struct aegis_rule *aegis_cg_inode_rule(struct aegis_hook_ctx *hc,
							      struct aegis_inode_key *k)
{
	struct aegis_cg_inode_key ck = {};
	struct aegis_rule *r;

	if (!(hc->flags & AEGIS_POL_CGROUP_RULES))
		return 0;
	ck.cgid = bpf_get_current_cgroup_id();
	ck.ino = k->ino;
	ck.dev = k->dev;
	ck.gen = hc->gen;
	r = bpf_map_lookup_elem(&aegis_cg_deny_inode, &ck);
	return (r && aegis_rule_enforced(r)) ? r : 0;
}

/*
 * The rule that applies to the inode in k (aegis_inode_key_of), or NULL.
 * A global rule (deny, or protect for an unverified task) is waived for the
 * survival allowlist (counted), the agent's cgroup and allowed cgroups; a
 * cgroup-scoped rule only for the first two. The caller checked
 * AEGIS_POL_FILE_RULES. Shared by the LSM hooks (below) and the
 * observe-only fallback (fallback.bpf.c). k->gen is the hook's again on
 * return.
 */
static __always_inline struct aegis_rule *aegis_inode_match(struct aegis_hook_ctx *hc,
							    struct aegis_inode_key *k)
{
	struct aegis_rule *r = bpf_map_lookup_elem(&aegis_deny_inode, k);
	struct aegis_rule *cr = aegis_cg_inode_rule(hc, k);

	if (r && !aegis_rule_enforced(r))
		r = 0;
	if (!r && !cr)
		return 0;
	k->gen = 0;
	if (bpf_map_lookup_elem(&aegis_survival_inode, k)) {
		aegis_count(AEGIS_CNT_SURVIVAL_ALLOW);
		k->gen = hc->gen;
		return 0;
	}
	k->gen = hc->gen;
	if (aegis_is_agent())
		return 0;
	if (r && !aegis_in_allow_cgroup(hc->gen))
		return r;
	return cr;
}

/* 0 to allow, -EPERM to deny; emits a record for every match. */
static __always_inline int aegis_inode_decide(struct aegis_hook_ctx *hc, struct inode *inode)
{
	struct aegis_inode_key k = {};
	struct aegis_rule *r;
	__u8 action;

	if (!(hc->flags & AEGIS_POL_FILE_RULES))
		return 0;
	aegis_inode_key_of(&k, inode, hc->gen);
	r = aegis_inode_match(hc, &k);
	if (!r)
		return aegis_hook_allow(hc);
	action = aegis_verdict(hc);
	aegis_emit_file_block(hc, &k, r, action);
	return aegis_action_rc(action);
}

#endif /* AEGIS_LIB_INODE_H */
