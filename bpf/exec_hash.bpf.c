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
 * Both answer the same rule with -EPERM. Not covered: mprotect(PROT_EXEC)
 * of a file mapped readable first: file_mprotect runs under the mmap lock
 * and is not a sleepable hook on 6.1 or 6.12 (the verifier refuses a
 * sleepable program there), so nothing can hash the file at that point
 * (docs/engine.md).
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
 * map lookup like every other hook. With deny rules, an exec hashes its
 * binary (twice: exec and the kernel's mapping of it), its loader and
 * every shared library it maps; with an allowlist alone, its binary once.
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

/* mmap/mprotect protection bits (uapi asm-generic/mman-common.h) */
#define AEGIS_PROT_EXEC 0x4

/*
 * `name` is the exec's filename; a mapping (`mapped` set) has none, so its
 * record gets the file's path from bpf_d_path (allowed in sleepable LSM
 * programs), or the file's own name when that fails.
 */
static __always_inline void aegis_hash_emit(struct aegis_hook_ctx *hc, struct aegis_inode_key *k,
					    struct aegis_hash_key *hk, struct aegis_rule *r,
					    __u8 action, const char *name, struct file *mapped)
{
	struct aegis_ev_hash_block *ev = aegis_ev_reserve(sizeof(*ev));

	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_HASH_BLOCK, AEGIS_EV_HASH_BLOCK_V1);
	AEGIS_FILL_BLOCK_FIELDS(ev, hc, k, r, action);
	__builtin_memcpy(ev->sha256, hk->sha256, sizeof(ev->sha256));
	if (mapped) {
		if (bpf_d_path(&mapped->f_path, ev->path, sizeof(ev->path)) < 0)
			bpf_probe_read_kernel_str(ev->path, sizeof(ev->path),
						  mapped->f_path.dentry->d_name.name);
	} else {
		bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), name);
	}
	aegis_ev_submit(ev);
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
	struct aegis_hash_key hk = {};
	struct aegis_inode_key k = {};
	struct aegis_hook_ctx hc;
	struct aegis_rule rule = {};
	struct aegis_rule *r = 0;
	__u16 unlisted = 0;
	__u32 lists;
	long algo;
	__u8 action;
	int known, v;

	aegis_hook_enter(&hc, hook);
	/* the lists that apply here (lib/exec_identity.h): none, no hash */
	lists = aegis_id_lists(hc.flags, mapping);
	if (!lists)
		return 0;
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
	if (v == AEGIS_ID_ALLOW)
		return aegis_hook_allow(&hc);
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
	aegis_hash_emit(&hc, &k, &hk, &rule, action, name, mapping ? file : 0);
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
