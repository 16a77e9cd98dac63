/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * exec.bpf.c — exec enforcement: lsm/bprm_check_security.
 *
 * Two checks, in this order, each answered with -EPERM (or an AUDIT record):
 *  1. the binary: the inode of bprm->file (for a script, the second pass
 *     checks the interpreter) against aegis_deny_inode. Runs when the live
 *     generation has AEGIS_POL_FILE_RULES or AEGIS_POL_EXEC_RULES: a
 *     deny_path/deny_inode rule on a binary denies its exec even when only
 *     the exec program set is loaded (lsm/file_open, when attached, already
 *     refuses the open of a denied binary; this hook is then not reached).
 *  2. deny_comm (AEGIS_POL_EXEC_RULES): the comm the new program will get,
 *     which begin_new_exec() sets to kbasename(bprm->filename) cut to
 *     TASK_COMM_LEN - 1 bytes, against aegis_deny_comm.
 * The survival allowlist (by the binary's inode) and the agent's / allowed
 * cgroups win over both, as in lib/inode.h. Records: AEGIS_EV_FILE_BLOCK
 * with hook AEGIS_HOOK_BPRM_CHECK, ino/dev of the binary, rule id and
 * flags; path = bprm->filename for a binary rule, the comm for a comm rule.
 *
 * Hook signature, identical in the BTF of Debian 6.1 and 6.12:
 *   int bpf_lsm_bprm_check_security(struct linux_binprm *bprm)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/inode.h"

/* Path bytes scanned for the last '/': chunks of AEGIS_EXEC_CHUNK - 1 bytes
 * (the string read keeps a NUL), at most AEGIS_EXEC_CHUNKS of them
 * (PATH_MAX = 4096). A longer filename cannot reach exec. */
#define AEGIS_EXEC_CHUNK 128
#define AEGIS_EXEC_CHUNKS 33

/* The scan of bprm->filename for its basename (the bpf_loop context). */
struct aegis_basename_ctx {
	const char *filename;
	char buf[AEGIS_EXEC_CHUNK];
	__u32 off;  /* offset of buf[0] in the filename */
	__u32 base; /* offset just past the last '/' seen */
};

/* bpf_loop callback: one chunk of the filename. As a callback the chunk's
 * scan is verified once, not once for each of the 33 chunks of an
 * open-coded outer loop, which took 3.8 s of the agent's 5 s object load
 * on Debian 6.1 under QEMU TCG (docs/benchmarks.md, agent start). */
static long aegis_basename_chunk(__u64 c, void *data)
{
	struct aegis_basename_ctx *x = data;
	int i, n;

	n = bpf_probe_read_kernel_str(x->buf, sizeof(x->buf), x->filename + x->off);
	if (n <= 0)
		return 1;
	/* n counts the NUL; bytes [0, n-1) are the string's. */
	for (i = 0; i < AEGIS_EXEC_CHUNK - 1; i++) {
		if (i >= n - 1)
			break;
		if (x->buf[i] == '/')
			x->base = x->off + i + 1;
	}
	if (n < AEGIS_EXEC_CHUNK)
		return 1;
	x->off += AEGIS_EXEC_CHUNK - 1;
	return 0;
}

/* Offset of the basename in the kernel string `filename` (kbasename()). */
static __always_inline __u32 aegis_basename_off(const char *filename)
{
	struct aegis_basename_ctx x;

	__builtin_memset(&x, 0, sizeof(x));
	x.filename = filename;
	bpf_loop(AEGIS_EXEC_CHUNKS, aegis_basename_chunk, &x, 0);
	return x.base;
}

static __always_inline void aegis_exec_emit(struct aegis_hook_ctx *hc, struct aegis_inode_key *k,
					    struct aegis_rule *r, __u8 action,
					    const char *filename, struct aegis_comm_key *ck)
{
	struct aegis_ev_file_block *ev = aegis_file_block_new(hc, k, r, action);

	if (!ev)
		return;
	if (ck)
		__builtin_memcpy(ev->path, ck->comm, sizeof(ck->comm));
	else
		bpf_probe_read_kernel_str(ev->path, sizeof(ev->path), filename);
	aegis_ev_submit(ev);
}

/* Deny-rule lookup for the binary and the comm; NULL: no rule. */
static __always_inline struct aegis_rule *aegis_exec_match(struct aegis_hook_ctx *hc,
							   __u64 flags,
							   struct aegis_inode_key *k,
							   const char *filename,
							   struct aegis_comm_key *ck,
							   int *by_comm)
{
	struct aegis_rule *r;

	r = bpf_map_lookup_elem(&aegis_deny_inode, k);
	if (r && (r->flags & AEGIS_RULE_DENY))
		return r;
	if (!(flags & AEGIS_POL_EXEC_RULES))
		return 0;
	ck->gen = hc->gen;
	if (bpf_probe_read_kernel_str(ck->comm, sizeof(ck->comm),
				      filename + aegis_basename_off(filename)) <= 0)
		return 0;
	r = bpf_map_lookup_elem(&aegis_deny_comm, ck);
	if (!r || !(r->flags & AEGIS_RULE_DENY))
		return 0;
	*by_comm = 1;
	return r;
}

SEC("lsm/bprm_check_security")
int BPF_PROG(aegis_bprm_check, struct linux_binprm *bprm, int ret)
{
	struct aegis_comm_key ck = {};
	struct aegis_inode_key k = {};
	struct aegis_hook_ctx hc;
	struct aegis_rule *r;
	const char *filename;
	int by_comm = 0;
	__u64 flags;
	__u8 action;

	if (ret != 0)
		return aegis_lsm_ret(ret); /* an earlier program already decided */
	aegis_hook_enter(&hc, AEGIS_HOOK_BPRM_CHECK);
	flags = hc.flags;
	if (!(flags & (AEGIS_POL_FILE_RULES | AEGIS_POL_EXEC_RULES)))
		return 0;
	filename = bprm->filename;
	aegis_inode_key_of(&k, bprm->file->f_inode, hc.gen);
	r = aegis_exec_match(&hc, flags, &k, filename, &ck, &by_comm);
	if (!r || aegis_inode_exempt(&hc, &k))
		return aegis_hook_allow(&hc);
	action = aegis_verdict(&hc);
	aegis_exec_emit(&hc, &k, r, action, filename, by_comm ? &ck : 0);
	return aegis_action_rc(action);
}
