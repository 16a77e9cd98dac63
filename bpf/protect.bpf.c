/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * protect.bpf.c — the per-process "verified" state behind protect_path and
 * protect_connect (docs/policy.md; the checks are in lib/verified.h). Nothing here
 * ever denies: every program passes the earlier verdict on.
 *
 *   lsm/bprm_creds_for_exec   an exec starts: exec_ok = 1, exec_stages = 0
 *   lsm/bprm_check_security   once per binfmt pass (the file, then each
 *                             interpreter of a script): exec_ok &= verified
 *   lsm/bprm_committed_creds  point of no return passed, current->mm is the
 *                             new mm: flags = VERIFIED if exec_ok and no
 *                             inline code in the new argv
 *   lsm/task_alloc            fork/clone/thread: the child copies the
 *                             parent's flags (no parent state: none)
 *
 * Inline code (SPEC: "-c/-e inline code makes it unverified"): for a
 * direct exec (one binfmt pass), the new argv[1..] is read from the new
 * mm's stack (bprm->p .. bprm->exec holds argv then envp) and the task is
 * unverified when an argument is a short-option cluster ("-x…", not
 * "--…") containing c, e or E (bash/sh -c, -lc, -ec; python -c, -Ic;
 * perl/ruby/node -e, perl -E), or starts with "--eval" (node). Scripts (two
 * or more passes) are not scanned: their arguments after the interpreter's
 * come from the verified script file itself (a "#!/bin/sh -e" line), and
 * the script's own argv is data. Conservative on purpose: grep -e or
 * sed -e (a kind of inline program too) also make a task unverified, which
 * only matters for protected files; an argv longer than the scanned bytes
 * (AEGIS_ARGV_CHUNKS x AEGIS_ARGV_CHUNK) is unverified too.
 *
 * Needs a kernel that frees task storage in free_task() ("bpf: Fix UAF in
 * task local storage", 6.4, in stable 6.1.y since 2023): task_alloc
 * creates storage on a task a later fork step may still discard.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "aegis_abi.h"
#include "aegis_maps.h"
#include "lib/decide.h"
#include "lib/verified.h"

#define AEGIS_ARGV_CHUNK 256
#define AEGIS_ARGV_CHUNKS 4

/* Where the argv scan is between bytes (may span chunks). */
struct aegis_argv_scan {
	__u32 argi;  /* index of the argument being read */
	__u32 pos;   /* byte position inside it */
	__u32 kind;  /* 0 plain, 1 short-option cluster, 2 long option */
	__u32 lm;    /* long option: bytes of "--eval" matched */
	__u32 found; /* inline code seen */
	__u32 done;  /* all argc arguments seen */
};

static __always_inline void aegis_argv_byte(struct aegis_argv_scan *s, char c, __u32 argc)
{
	if (c == 0) {
		if (s->kind == 2 && s->lm == 6)
			s->found = 1;
		s->argi++;
		s->pos = 0;
		s->kind = 0;
		s->lm = 0;
		if (s->argi >= argc)
			s->done = 1;
		return;
	}
	if (s->argi >= 1) {
		if (s->pos == 0) {
			s->kind = c == '-' ? 1 : 0;
		} else if (s->pos == 1 && s->kind == 1 && c == '-') {
			s->kind = 2;
			s->lm = 2;
		} else if (s->kind == 1 && (c == 'c' || c == 'e' || c == 'E')) {
			s->found = 1;
		} else if (s->kind == 2) {
			char want = s->lm == 2 ? 'e' : s->lm == 3 ? 'v' : s->lm == 4 ? 'a' :
				    s->lm == 5 ? 'l' : 0;

			if (want && c == want)
				s->lm++;
			else if (s->lm == 6 && c == '=')
				s->found = 1;
			else
				s->lm = 0;
		}
	}
	s->pos++;
}

/* One chunk of the new argv and the scan state (bpf_loop context). */
struct aegis_argv_ctx {
	char buf[AEGIS_ARGV_CHUNK];
	struct aegis_argv_scan s;
	__u32 argc;
};

/* bpf_loop callback: one byte; the callback is verified once, not once per
 * byte as an open-coded loop would be (that one exceeds the 1M budget). */
static long aegis_argv_cb(__u64 i, void *data)
{
	struct aegis_argv_ctx *x = data;

	if (i >= AEGIS_ARGV_CHUNK)
		return 1;
	aegis_argv_byte(&x->s, x->buf[i], x->argc);
	return x->s.done ? 1 : 0; /* the verifier wants 0 or 1, provably */
}

/* AEGIS_TASK_INLINE_CODE, AEGIS_TASK_ARGV_CUT, or 0 (clean). */
static __always_inline __u32 aegis_argv_inline(struct linux_binprm *bprm)
{
	struct aegis_argv_ctx x;
	unsigned long p = BPF_CORE_READ(bprm, p);
	unsigned long end = BPF_CORE_READ(bprm, exec);
	int c;

	__builtin_memset(&x, 0, sizeof(x));
	x.argc = BPF_CORE_READ(bprm, argc);
	if (x.argc <= 1)
		return 0;
	for (c = 0; c < AEGIS_ARGV_CHUNKS; c++) {
		__u64 sz = end > p ? end - p : 0;

		barrier_var(sz);
		if (sz == 0)
			break;
		if (sz > AEGIS_ARGV_CHUNK)
			sz = AEGIS_ARGV_CHUNK;
		if (bpf_probe_read_user(x.buf, sz, (void *)p))
			return AEGIS_TASK_ARGV_CUT;
		bpf_loop(sz, aegis_argv_cb, &x, 0);
		if (x.s.found)
			return AEGIS_TASK_INLINE_CODE;
		if (x.s.done)
			return 0;
		p += sz;
	}
	return AEGIS_TASK_ARGV_CUT;
}

SEC("lsm/bprm_creds_for_exec")
int BPF_PROG(aegis_verified_exec_start, struct linux_binprm *bprm, int ret)
{
	struct aegis_task_state *st = aegis_task_state_of(bpf_get_current_task_btf(), 1);

	if (st) {
		st->exec_ok = 1;
		st->exec_stages = 0;
	}
	return aegis_lsm_ret(ret);
}

SEC("lsm/bprm_check_security")
int BPF_PROG(aegis_verified_exec_check, struct linux_binprm *bprm, int ret)
{
	struct aegis_task_state *st = aegis_task_state_of(bpf_get_current_task_btf(), 0);

	if (st) {
		st->exec_stages++;
		if (!aegis_file_verified(BPF_CORE_READ(bprm, file)))
			st->exec_ok = 0;
	}
	return aegis_lsm_ret(ret);
}

SEC("lsm/bprm_committed_creds")
int BPF_PROG(aegis_verified_exec_commit, struct linux_binprm *bprm)
{
	struct aegis_task_state *st = aegis_task_state_of(bpf_get_current_task_btf(), 0);
	__u32 flags = 0;

	if (!st)
		return 0;
	if (st->exec_ok && st->exec_stages >= 1) {
		flags = st->exec_stages == 1 ? aegis_argv_inline(bprm) : 0;
		if (!flags)
			flags = AEGIS_TASK_VERIFIED;
	}
	st->flags = flags;
	st->exec_ok = 0;
	st->exec_stages = 0;
	return 0;
}

SEC("lsm/task_alloc")
int BPF_PROG(aegis_verified_fork, struct task_struct *task, unsigned long clone_flags, int ret)
{
	struct aegis_task_state *parent, *child;

	if (ret != 0)
		return aegis_lsm_ret(ret);
	parent = aegis_task_state_of(bpf_get_current_task_btf(), 0);
	if (!parent || !parent->flags)
		return 0;
	child = aegis_task_state_of(task, 1);
	if (child)
		child->flags = parent->flags;
	return 0;
}
