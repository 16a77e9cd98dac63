/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * exec_hash.bpf.c — exec identity by content: deny_binary_hash
 * (docs/policy.md, docs/engine.md "Exec identity by content").
 *
 * A *sleepable* lsm.s/bprm_check_security program asks IMA for the SHA-256
 * of the file about to be executed (bpf_ima_file_hash, kernels >= 5.18,
 * sleepable LSM programs only) and looks it up in aegis_deny_hash. The hash
 * is the content's, not the inode's: a copy, a hard link, a new name, a
 * file on tmpfs or a memfd (execveat/fexecve) all hash the same.
 *
 * Cost: bpf_ima_file_hash returns IMA's cached measurement when an IMA
 * policy has measured the file already; otherwise it reads and hashes the
 * whole file on every call. So the program hashes only when the live
 * generation has AEGIS_POL_EXEC_HASH (a non-empty [deny_binary_hash]); with
 * no such rule it costs a map lookup like every other hook.
 *
 * No SHA-256 (the helper fails, or IMA hashes with another algorithm):
 * unknown identity, the exec is allowed and AEGIS_CNT_HASH_UNKNOWN counts
 * it (a deny list cannot match what it cannot name).
 *
 * Exemptions and verdict are the exec path's (lib/inode.h, lib/decide.h):
 * the survival allowlist (by the binary's inode), the agent's own cgroup
 * and allow_cgroup waive the rule; audit mode, emergency disable and
 * break-glass report it (AUDIT) instead of denying. Record:
 * AEGIS_EV_HASH_BLOCK with hook AEGIS_HOOK_BPRM_HASH and the digest.
 *
 * The engine loads this program only where the kernel verifies it
 * (src/bpf/engine.ts: a failed load is retried without it and reported),
 * so a kernel without the helper or sleepable LSM keeps every other hook.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/inode.h"

static __always_inline void aegis_hash_emit(struct aegis_hook_ctx *hc, struct aegis_inode_key *k,
					    struct aegis_hash_key *hk, struct aegis_rule *r,
					    __u8 action, const char *filename)
{
	struct aegis_ev_hash_block *ev = aegis_ev_reserve(sizeof(*ev));

	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_HASH_BLOCK, AEGIS_EV_HASH_BLOCK_V1);
	aegis_fill_proc(&ev->proc);
	ev->ino = k->ino;
	ev->dev = k->dev;
	ev->rule_id = r->rule_id;
	ev->rule_flags = r->flags;
	ev->action = action;
	ev->hook = (__u8)hc->hook;
	__builtin_memcpy(ev->sha256, hk->sha256, sizeof(ev->sha256));
	bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), filename);
	aegis_ev_submit(ev);
}

SEC("lsm.s/bprm_check_security")
int BPF_PROG(aegis_bprm_hash, struct linux_binprm *bprm, int ret)
{
	struct aegis_hash_key hk = {};
	struct aegis_inode_key k = {};
	struct aegis_hook_ctx hc;
	struct aegis_rule *r;
	long algo;
	__u8 action;

	if (ret != 0)
		return aegis_lsm_ret(ret); /* an earlier program already decided */
	aegis_hook_enter(&hc, AEGIS_HOOK_BPRM_HASH);
	if (!(hc.flags & AEGIS_POL_EXEC_HASH))
		return 0;
	algo = bpf_ima_file_hash(bprm->file, hk.sha256, sizeof(hk.sha256));
	if (algo != HASH_ALGO_SHA256) {
		aegis_count(AEGIS_CNT_HASH_UNKNOWN);
		return aegis_hook_allow(&hc);
	}
	hk.gen = hc.gen;
	r = bpf_map_lookup_elem(&aegis_deny_hash, &hk);
	if (!r || !(r->flags & AEGIS_RULE_DENY))
		return aegis_hook_allow(&hc);
	aegis_inode_key_of(&k, bprm->file->f_inode, hc.gen);
	if (aegis_inode_exempt(&hc, &k))
		return aegis_hook_allow(&hc);
	action = aegis_verdict(&hc);
	aegis_hash_emit(&hc, &k, &hk, r, action, bprm->filename);
	return aegis_action_rc(action);
}
