/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * exec_hash.bpf.c — exec identity by content: deny_binary_hash,
 * allow_binary_hash, trusted_exec_hash (docs/policy.md, docs/engine.md
 * "Exec identity by content").
 *
 * Two *sleepable* programs ask IMA for the SHA-256 of a file about to
 * run (bpf_ima_file_hash, kernels >= 5.18, sleepable LSM programs only)
 * and look it up in aegis_deny_hash. The hash is the content's, not the
 * inode's: a copy, a hard link, a new name, a file on tmpfs or a memfd
 * (execveat/fexecve) all hash the same.
 *  - lsm.s/bprm_check_security: the file an execve runs (and, for a
 *    script, its interpreter);
 *  - lsm.s/mmap_file with PROT_EXEC: code mapped without an exec of its
 *    own, as `ld.so /copy/of/binary` does (the kernel maps only ld.so at
 *    exec; ld.so maps the program itself), and any executable mapping of
 *    a file (dlopen, a hand-written loader).
 * Both answer the same rule with -EPERM. A third, *non-sleepable*
 * program closes the last route, a file mapped readable first and made
 * executable with mprotect: file_mprotect runs under the mmap lock and is
 * not a sleepable hook on 6.1 or 6.12 (the verifier refuses a sleepable
 * program there), so nothing can hash the file at that point. Instead:
 *  - lsm/file_mprotect adding PROT_EXEC to a file mapping that was not
 *    executable allows only a file the mapping (or exec) program hashed and
 *    did not deny, under the live policy, unchanged since (aegis_hash_verified,
 *    lib/hash_verified.h), and refuses every other one: fail closed, the
 *    record has no digest and rule_flags AEGIS_RULE_UNVERIFIED
 *    (docs/engine.md, "mprotect(PROT_EXEC)").
 *
 * The lists (lib/exec_identity.h decides, one lookup answers all):
 * [deny_binary_hash] (AEGIS_RULE_DENY) on both programs; the allowlist
 * [allow_binary_hash] (AEGIS_RULE_ALLOW, AEGIS_POL_EXEC_ALLOWLIST) and the
 * trusted list [trusted_exec_hash] (AEGIS_RULE_TRUSTED,
 * AEGIS_POL_EXEC_TRUSTED) on the exec program, and on the mapping program
 * too with [protect_runtime_deps] (AEGIS_POL_RUNTIME_DEPS). The most
 * restrictive wins; a content not on a list is denied with rule_id 0 and
 * rule_flags AEGIS_RULE_UNLISTED (| AEGIS_RULE_TRUSTED for the trusted
 * list). Unknown identity (no SHA-256): denied by the allowlist, by the
 * trusted list only with [ima_fail_closed] (AEGIS_POL_IMA_FAIL_CLOSED),
 * else allowed. Without protect_runtime_deps a listed loader (ld.so) can
 * still map an unlisted program: docs/engine.md says not to list ld.so.
 *
 * Cost: bpf_ima_file_hash returns IMA's cached measurement when an IMA
 * policy has measured the file already; otherwise it reads and hashes the
 * whole file on every call. So a program hashes only when a list applies
 * to it in the live generation (aegis_id_lists); with none each costs a
 * map lookup like every other hook. And a file is hashed once per policy
 * while it stays unchanged: both programs first look for it in
 * aegis_hash_verified (aegis_verified_hit), which they fill with every
 * file they hashed and allowed with a SHA-256. So the kernel's mapping of
 * the binary an exec just checked, and every later exec of it or mapping of
 * a library, costs a lookup (AEGIS_CNT_HASH_CACHED counts them). The first
 * exec under a policy, or after the file changed, hashes.
 *
 * No SHA-256 (the helper fails, or IMA hashes with another algorithm):
 * unknown identity, AEGIS_CNT_HASH_UNKNOWN counts it (sha256 all zero in
 * a record).
 *
 * Exemptions and verdict are the exec path's (lib/inode.h, lib/decide.h):
 * the survival allowlist (by the file's inode), the agent's own cgroup
 * and allow_cgroup waive the rule; audit mode, emergency disable and
 * break-glass report it (AUDIT) instead of denying (the allowlist's
 * rollout: audit first, list what the records name, then enforce).
 * Record: AEGIS_EV_HASH_BLOCK with the hook and the digest.
 *
 * The engine loads these programs only where the kernel verifies them
 * (src/bpf/engine.ts: a failed load is retried without them and reported),
 * so a kernel without the helper or sleepable LSM keeps every other hook.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/exec_identity.h"
#include "lib/inode.h"
#include "lib/hash_verified.h"

/* mmap/mprotect protection bits (uapi asm-generic/mman-common.h) */
#define AEGIS_PROT_EXEC 0x4
/* include/linux/mm.h */
#define AEGIS_VM_EXEC 0x4

/* Where a record's path comes from. */
enum aegis_hash_name {
	AEGIS_NAME_EXEC = 0,   /* the exec's filename */
	AEGIS_NAME_D_PATH = 1, /* the mapped file's path (bpf_d_path: sleepable hooks only) */
	AEGIS_NAME_DENTRY = 2, /* the mapped file's own name (file_mprotect has no bpf_d_path) */
};

/*
 * `name` is the exec's filename (AEGIS_NAME_EXEC); a mapping has none, so
 * its record gets the file's path from bpf_d_path (allowed in sleepable LSM
 * programs), or the file's own name when that fails or is not allowed.
 */
static __always_inline void aegis_hash_emit(struct aegis_hook_ctx *hc, struct aegis_inode_key *k,
					    struct aegis_hash_key *hk, struct aegis_rule *r,
					    __u8 action, const char *name, struct file *mapped,
					    const int how)
{
	struct aegis_ev_hash_block *ev = aegis_ev_reserve(sizeof(*ev));

	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_HASH_BLOCK, AEGIS_EV_HASH_BLOCK_V1);
	AEGIS_FILL_BLOCK_FIELDS(ev, hc, k, r, action);
	__builtin_memcpy(ev->sha256, hk->sha256, sizeof(ev->sha256));
	if (how == AEGIS_NAME_D_PATH) {
		if (bpf_d_path(&mapped->f_path, ev->path, sizeof(ev->path)) < 0)
			bpf_probe_read_kernel_str(ev->path, sizeof(ev->path),
						  mapped->f_path.dentry->d_name.name);
	} else if (how == AEGIS_NAME_DENTRY) {
		bpf_probe_read_kernel_str(ev->path, sizeof(ev->path),
					  BPF_CORE_READ(mapped, f_path.dentry, d_name.name));
	} else {
		bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), name);
	}
	aegis_ev_submit(ev);
}

/* The inode whose content a verified entry of `file` names, or NULL when
 * the file cannot be verified: its mapping's inode is not known, or it
 * lives on a kernel-internal mount (a memfd or shm segment: its writable
 * fds are not counted in i_writecount and never pass file_open). */
static __always_inline struct inode *aegis_verifiable_inode(struct file *file)
{
	if (BPF_CORE_READ(file, f_path.mnt, mnt_flags) & AEGIS_MNT_INTERNAL)
		return 0;
	return aegis_mapped_inode(file);
}

/*
 * Before hashing: was this file verified already, unchanged, under the
 * live generation and epoch, against at least the lists that apply here,
 * and is nobody writing it now? Then its verdict is known (allowed) and
 * the file is not read again. An exec's entry serves the mapping of the
 * same binary the kernel makes right after it (the exec's lists include
 * the mapping's), and every later exec or mapping of it; a mapping's entry
 * serves later mappings (and mprotect), not an exec when the exec checks
 * more lists (an allowlist without protect_runtime_deps).
 */
static __always_inline int aegis_inode_verified(struct aegis_hook_ctx *hc, struct inode *inode,
						__u32 lists)
{
	struct aegis_verified_key vk = {};
	struct aegis_verified *v;

	aegis_verified_key_of(&vk, inode);
	v = bpf_map_lookup_elem(&aegis_hash_verified, &vk);
	if (!v || v->state != AEGIS_VERIFIED_OK || v->gen != hc->gen ||
	    v->epoch != aegis_config_get(AEGIS_CFG_HASH_EPOCH) || (v->lists & lists) != lists)
		return 0;
	/* a writer now could change the content within the same ctime */
	return !aegis_has_writer(inode);
}

/* aegis_inode_verified for the file a hashing program is about to hash. */
static __always_inline int aegis_verified_hit(struct aegis_hook_ctx *hc, struct file *file,
					      __u32 lists)
{
	struct inode *inode = aegis_verifiable_inode(file);

	return inode && aegis_inode_verified(hc, inode, lists);
}

/*
 * The hashing programs' half of aegis_hash_verified: before hashing, a
 * PENDING entry for the file as it is now, unless it is open for writing
 * or cannot be verified (aegis_verifiable_inode); 0 when none was made.
 * The writer count is read again after the insert: a writer that opened
 * before it is seen there, one that opens after it deletes the entry
 * (file.bpf.c), so aegis_verified_done's BPF_EXIST update fails. (A file
 * being executed has no writer: the exec denies write access to it.)
 */
static __always_inline int aegis_verified_begin(struct aegis_hook_ctx *hc, struct file *file,
						struct aegis_verified_key *vk, __u32 lists)
{
	struct inode *inode = aegis_verifiable_inode(file);
	struct aegis_verified v = {};

	if (!inode)
		return 0;
	if (aegis_has_writer(inode))
		return 0;
	aegis_verified_key_of(vk, inode);
	v.epoch = aegis_config_get(AEGIS_CFG_HASH_EPOCH);
	v.gen = hc->gen;
	v.state = AEGIS_VERIFIED_PENDING;
	v.lists = lists;
	if (bpf_map_update_elem(&aegis_hash_verified, vk, &v, BPF_ANY))
		return 0;
	if (aegis_has_writer(inode)) {
		bpf_map_delete_elem(&aegis_hash_verified, vk);
		return 0;
	}
	return 1;
}

/* The hash is known and not denied: PENDING becomes OK, if it is still there. */
static __always_inline void aegis_verified_done(struct aegis_verified_key *vk, int ok)
{
	struct aegis_verified *p = bpf_map_lookup_elem(&aegis_hash_verified, vk);
	struct aegis_verified v;

	if (!p)
		return;
	if (!ok || p->state != AEGIS_VERIFIED_PENDING) {
		bpf_map_delete_elem(&aegis_hash_verified, vk);
		return;
	}
	v = *p;
	v.state = AEGIS_VERIFIED_OK;
	bpf_map_update_elem(&aegis_hash_verified, vk, &v, BPF_EXIST);
}

/*
 * The verdict on running the content of `file` at hook `hook`: 0, or the
 * LSM return of a deny. `name`: the exec's filename; `mapping` (a
 * constant, so the exec program has no bpf_d_path call): the record names
 * the file's path instead.
 */
static __always_inline int aegis_hash_check(__u32 hook, struct file *file, const char *name,
					    const int mapping)
{
	struct aegis_verified_key vk = {};
	struct aegis_hash_key hk = {};
	struct aegis_inode_key k = {};
	struct aegis_hook_ctx hc;
	struct aegis_rule rule = {};
	struct aegis_rule *r = 0;
	__u16 unlisted = 0;
	__u32 lists;
	long algo;
	__u8 action;
	int known, v, pending = 0;

	aegis_hook_enter(&hc, hook);
	/* the lists that apply here (lib/exec_identity.h): none, no hash */
	lists = aegis_id_lists(hc.flags, mapping);
	if (!lists)
		return 0;
	if (aegis_verified_hit(&hc, file, lists)) {
		aegis_count(AEGIS_CNT_HASH_CACHED);
		return aegis_hook_allow(&hc);
	}
	pending = aegis_verified_begin(&hc, file, &vk, lists);
	algo = bpf_ima_file_hash(file, hk.sha256, sizeof(hk.sha256));
	known = algo == HASH_ALGO_SHA256;
	if (known) {
		hk.gen = hc.gen;
		r = bpf_map_lookup_elem(&aegis_deny_hash, &hk);
	} else {
		aegis_count(AEGIS_CNT_HASH_UNKNOWN);
		__builtin_memset(hk.sha256, 0, sizeof(hk.sha256));
	}
	v = aegis_id_verdict(lists, hc.flags, known, r ? r->flags : 0, &unlisted);
	if (v == AEGIS_ID_ALLOW) {
		/* verified only with a SHA-256: an unknown identity let through
		 * (fail open) is never verified for mprotect */
		if (pending)
			aegis_verified_done(&vk, known);
		return aegis_hook_allow(&hc);
	}
	if (pending)
		aegis_verified_done(&vk, 0); /* a refused content is never verified */
	if (v == AEGIS_ID_DENY_ENTRY && r) {
		rule = *r; /* a denied content, listed or not */
	} else {
		rule.flags = unlisted;
		rule.rule_type = AEGIS_RT_HASH;
	}
	aegis_inode_key_of(&k, file->f_inode, hc.gen);
	if (aegis_inode_exempt(&hc, &k))
		return aegis_hook_allow(&hc);
	action = aegis_verdict(&hc);
	aegis_hash_emit(&hc, &k, &hk, &rule, action, name, file,
			mapping ? AEGIS_NAME_D_PATH : AEGIS_NAME_EXEC);
	return aegis_action_rc(action);
}

SEC("lsm.s/bprm_check_security")
int BPF_PROG(aegis_bprm_hash, struct linux_binprm *bprm, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret); /* an earlier program already decided */
	return aegis_hash_check(AEGIS_HOOK_BPRM_HASH, bprm->file, bprm->filename, 0);
}

/*
 * Hook signature, identical in the BTF of Debian 6.1 and 6.12:
 *   int bpf_lsm_mmap_file(struct file *file, unsigned long reqprot,
 *                         unsigned long prot, unsigned long flags)
 * `prot` is what the kernel applies (READ_IMPLIES_EXEC may add PROT_EXEC
 * to a request without it). An anonymous mapping has no file: nothing to
 * name, nothing to check.
 */
SEC("lsm.s/mmap_file")
int BPF_PROG(aegis_mmap_hash, struct file *file, unsigned long reqprot, unsigned long prot,
	     unsigned long flags, int ret)
{
	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!file || !(prot & AEGIS_PROT_EXEC))
		return 0;
	return aegis_hash_check(AEGIS_HOOK_MMAP_HASH, file, 0, 1);
}

/*
 * Hook signature, identical in the BTF of Debian 6.1 and 6.12:
 *   int bpf_lsm_file_mprotect(struct vm_area_struct *vma,
 *                             unsigned long reqprot, unsigned long prot)
 * Checked: `prot` (applied, as in mmap_file) gains PROT_EXEC on a file
 * mapping that is not executable yet. Not checked: anonymous mappings, a
 * mapping that is executable already (RELRO and text relocations change
 * its other bits), and a mapping losing PROT_EXEC. The key is the mapped
 * inode's (lib/hash_verified.h: for overlayfs, the layer's).
 */
SEC("lsm/file_mprotect")
int BPF_PROG(aegis_mprotect_hash, struct vm_area_struct *vma, unsigned long reqprot,
	     unsigned long prot, int ret)
{
	struct aegis_hash_key hk = {};
	struct aegis_inode_key k = {};
	struct aegis_rule rule = {};
	struct aegis_hook_ctx hc;
	struct inode *inode;
	struct file *file;
	__u32 lists;
	__u8 action;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	if (!(prot & AEGIS_PROT_EXEC))
		return 0;
	file = vma->vm_file;
	if (!file || (vma->vm_flags & AEGIS_VM_EXEC))
		return 0;
	aegis_hook_enter(&hc, AEGIS_HOOK_MPROTECT_HASH);
	/* checked whenever the mapping program checks mappings (the deny list,
	 * and under protect_runtime_deps the allow and trusted lists) */
	lists = aegis_id_lists(hc.flags, 1);
	if (!lists)
		return 0;
	/* verified against the mapping's lists (by a mapping or an exec of the
	 * file), unchanged, no writer: allowed; anything else fails closed */
	inode = file->f_inode;
	if (aegis_inode_verified(&hc, inode, lists))
		return aegis_hook_allow(&hc);
	aegis_inode_key_of(&k, inode, hc.gen);
	if (aegis_inode_exempt(&hc, &k))
		return aegis_hook_allow(&hc);
	rule.flags = AEGIS_RULE_UNVERIFIED;
	rule.rule_type = AEGIS_RT_HASH;
	action = aegis_verdict(&hc);
	aegis_hash_emit(&hc, &k, &hk, &rule, action, 0, file, AEGIS_NAME_DENTRY);
	return aegis_action_rc(action);
}
