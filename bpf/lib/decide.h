/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * decide.h — the decision helpers every enforcement hook shares:
 * generation, policy switches, enforcement mode, the agent's own cgroup,
 * global cgroup allowlist, per-hook statistics and the verdict.
 *
 * A hook's shape:
 *   struct aegis_hook_ctx hc;
 *   aegis_hook_enter(&hc, AEGIS_HOOK_X);          // counts it, reads gen and flags
 *   if (!(hc.flags & AEGIS_POL_X)) return 0;      // no rules: allow
 *   ... find a matching struct aegis_rule *r ...
 *   if (!r) return aegis_hook_allow(&hc);
 *   action = aegis_verdict(&hc);                   // BLOCK, TERM/KILL/INT or AUDIT
 *   ... emit a block record with `action` ...
 *   return aegis_action_rc(action);
 * and a hook that passes on an earlier program's `ret` returns
 * aegis_lsm_ret(ret) too (see there: 6.12's verifier checks the range).
 * A full ring buffer never changes the verdict: the record is dropped and
 * counted, the decision stands.
 */
#ifndef AEGIS_LIB_DECIDE_H
#define AEGIS_LIB_DECIDE_H

#include <bpf/bpf_core_read.h>

#include "counters.h"

#define AEGIS_EPERM 1

/*
 * Every LSM program must return 0 or a negative errno no lower than -4095;
 * newer verifiers (6.12 here) reject a program whose return value they
 * cannot prove to be in that range ("At program exit the register R0 has
 * unknown scalar value"). The compiler turns "blocked ? -EPERM : 0" into
 * arithmetic whose range the verifier loses, and `ret` (an earlier
 * program's verdict) has no known range at all. Clamp through a barrier the
 * compiler cannot fold, so the verifier sees the bounds checks.
 */
static __always_inline int aegis_lsm_ret(int rc)
{
	__s64 v = rc; /* compare the very register that is returned, all 64 bits */

	barrier_var(v);
	if (v > 0 || v < -4095)
		return 0;
	return v;
}

/*
 * The return code for a verdict: 0 for AEGIS_ACT_AUDIT, else -EPERM (a
 * deny, with or without a signal). The empty asm hides the value's range
 * from clang, which would otherwise emit arithmetic (BPF_NEG) whose range
 * 6.12's verifier forgets; this way it emits a compare and two constants.
 */
static __always_inline int aegis_action_rc(__u8 action)
{
	__u32 a = action;

	asm volatile("" : "+r"(a));
	if (a == AEGIS_ACT_AUDIT)
		return 0;
	return -AEGIS_EPERM;
}

/*
 * One hook call's context, read once at its start: its per-CPU statistics
 * slot, the live generation and that generation's policy switches.
 */
struct aegis_hook_ctx {
	struct aegis_hook_stat *st; /* NULL only if the array lookup failed */
	__u64 t0;                   /* 0: this call's latency is not sampled */
	__u64 flags;                /* aegis_policy[gen].flags */
	__u32 hook;
	__u32 gen;
};

static __always_inline struct aegis_hook_stat *aegis_hook_stat(__u32 hook)
{
	return bpf_map_lookup_elem(&aegis_hook_stats, &hook);
}

static __always_inline __u64 aegis_policy_flags(__u32 gen)
{
	struct aegis_policy *p = bpf_map_lookup_elem(&aegis_policy, &gen);

	return p ? p->flags : 0;
}

/*
 * Latency is sampled: one call in AEGIS_LATENCY_SAMPLE (per CPU, by its
 * invocation count) reads the clock at start and end, and adds its time
 * times AEGIS_LATENCY_SAMPLE, so latency_ns stays an estimate of the total
 * (docs/telemetry.md). Two clock reads on every call were most of the
 * allow path's helper calls.
 */
#define AEGIS_LATENCY_SAMPLE 64

/* Start of every enforcement hook: count it, read the live generation and its switches. */
static __always_inline void aegis_hook_enter(struct aegis_hook_ctx *hc, __u32 hook)
{
	struct aegis_hook_stat *st = aegis_hook_stat(hook);

	hc->st = st;
	hc->t0 = 0;
	if (st) {
		if ((st->invocations & (AEGIS_LATENCY_SAMPLE - 1)) == 0)
			hc->t0 = bpf_ktime_get_ns();
		st->invocations++;
	}
	hc->hook = hook;
	hc->gen = (__u32)aegis_config_get(AEGIS_CFG_GENERATION) & 1;
	hc->flags = aegis_policy_flags(hc->gen);
}

static __always_inline void aegis_hook_latency(struct aegis_hook_ctx *hc)
{
	if (hc->st && hc->t0)
		hc->st->latency_ns += (bpf_ktime_get_ns() - hc->t0) * AEGIS_LATENCY_SAMPLE;
}

/* Allow after rules were checked. */
static __always_inline int aegis_hook_allow(struct aegis_hook_ctx *hc)
{
	aegis_hook_latency(hc);
	return 0;
}

/* Is the current task in the agent's own cgroup? (No rule applies to it.) */
static __always_inline int aegis_is_agent(void)
{
	__u64 cgid = bpf_get_current_cgroup_id();

	return cgid && cgid == aegis_config_get(AEGIS_CFG_AGENT_CGID);
}

/* Is the current task in a globally allowed cgroup? (Waives global rules
 * only; cgroup-scoped rules still apply.) */
static __always_inline int aegis_in_allow_cgroup(__u32 gen)
{
	struct aegis_cgroup_key k = { .cgid = bpf_get_current_cgroup_id(), .gen = gen };

	return bpf_map_lookup_elem(&aegis_allow_cgroup, &k) != 0;
}

/* Is the current task the agent itself, or in a globally allowed cgroup? */
static __always_inline int aegis_cgroup_allowed(__u32 gen)
{
	return aegis_is_agent() || aegis_in_allow_cgroup(gen);
}

#define AEGIS_SIGINT 2
#define AEGIS_SIGKILL 9
#define AEGIS_SIGTERM 15

/* The action a signal number stands for; AUDIT for 0 or anything else. */
static __always_inline __u8 aegis_signal_action(__u64 sig)
{
	if (sig == AEGIS_SIGKILL)
		return AEGIS_ACT_KILL;
	if (sig == AEGIS_SIGTERM)
		return AEGIS_ACT_TERM;
	if (sig == AEGIS_SIGINT)
		return AEGIS_ACT_INT;
	return AEGIS_ACT_AUDIT;
}

/*
 * Kill escalation: count this deny against the current process (its tgid
 * and its leader's start time, so a reused pid starts afresh) in
 * aegis_strikes. `esc` is AEGIS_CFG_KILL_ESCALATION: the threshold in bits
 * 0-31, the window in ms in bits 32-63. A window starts at a process's
 * first deny and ends `window` later; the next deny after it starts a new
 * one. 1 when this deny is the threshold-th (or later) of its window.
 */
static __always_inline int aegis_strike(__u64 esc)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct aegis_strike_key k = {};
	__u32 threshold = (__u32)esc;
	__u64 window_ns = (esc >> 32) * 1000000ULL;
	__u64 now = bpf_ktime_get_ns();
	struct aegis_strikes *s;

	k.tgid = bpf_get_current_pid_tgid() >> 32;
	k.start_time = BPF_CORE_READ(task, group_leader, start_time);
	s = bpf_map_lookup_elem(&aegis_strikes, &k);
	if (!s || now - s->first_ns > window_ns) {
		struct aegis_strikes fresh = { .first_ns = now, .count = 1 };

		bpf_map_update_elem(&aegis_strikes, &k, &fresh, BPF_ANY);
		return threshold <= 1;
	}
	/* the object is built for the BPF v1 ISA: no fetching atomics; a
	 * concurrent thread's deny may be seen by both, never lost */
	__sync_fetch_and_add(&s->count, 1);
	return s->count >= threshold;
}

/*
 * A deny (AEGIS_ACT_BLOCK) was decided: also signal the current process
 * when run --enforce-signal armed AEGIS_CFG_ENFORCE_SIGNAL, escalated to
 * SIGKILL on the threshold-th deny in the window (aegis_strike). Read only
 * here, after a deny: the allow path never looks at it. Never for the
 * enforcement proof's probes (AEGIS_CFG_CANARY_CGID: they must live to
 * report the EPERM). The kernel refuses to signal PID 1, kernel threads
 * and exiting tasks: the deny then stays BLOCK (counted in
 * AEGIS_CNT_SIGNAL_FAILED); the record never claims more than happened.
 */
static __always_inline __u8 aegis_deny_signal(void)
{
	__u64 sig = aegis_config_get(AEGIS_CFG_ENFORCE_SIGNAL);
	__u64 esc, canary;
	int escalated = 0;
	__u8 action;

	if (!sig)
		return AEGIS_ACT_BLOCK;
	canary = aegis_config_get(AEGIS_CFG_CANARY_CGID);
	if (canary && canary == bpf_get_current_cgroup_id())
		return AEGIS_ACT_BLOCK;
	esc = aegis_config_get(AEGIS_CFG_KILL_ESCALATION);
	if (sig != AEGIS_SIGKILL && (__u32)esc && aegis_strike(esc)) {
		sig = AEGIS_SIGKILL;
		escalated = 1;
	}
	action = aegis_signal_action(sig);
	if (action == AEGIS_ACT_AUDIT)
		return AEGIS_ACT_BLOCK; /* not a signal we send */
	if (bpf_send_signal((__u32)sig)) {
		aegis_count(AEGIS_CNT_SIGNAL_FAILED);
		return AEGIS_ACT_BLOCK;
	}
	aegis_count(AEGIS_CNT_SIGNAL_SENT);
	if (escalated)
		aegis_count(AEGIS_CNT_KILL_ESCALATION);
	return action;
}

/* A rule matched: deny, or only report (audit mode, emergency disable,
 * break-glass); a deny may also signal (`may_signal`, aegis_deny_signal).
 * Counts the outcome in the hook's statistics (a signal as a block). */
static __always_inline __u8 aegis_verdict_of(struct aegis_hook_ctx *hc, int may_signal)
{
	struct aegis_hook_stat *st = hc->st;
	__u8 action = AEGIS_ACT_BLOCK;

	if (aegis_config_get(AEGIS_CFG_AUDIT_ONLY) || aegis_config_get(AEGIS_CFG_EMERGENCY_DISABLE) ||
	    aegis_config_get(AEGIS_CFG_BREAK_GLASS))
		action = AEGIS_ACT_AUDIT;
	else if (may_signal)
		action = aegis_deny_signal();
	if (st) {
		if (action == AEGIS_ACT_AUDIT)
			st->audits++;
		else
			st->blocks++;
	}
	aegis_hook_latency(hc);
	return action;
}

/* The verdict of the file, exec and network hooks: a deny may signal. */
static __always_inline __u8 aegis_verdict(struct aegis_hook_ctx *hc)
{
	return aegis_verdict_of(hc, 1);
}

/* The verdict of the kernel switches (kernel.bpf.c): never a signal (docs/engine.md). */
static __always_inline __u8 aegis_verdict_quiet(struct aegis_hook_ctx *hc)
{
	return aegis_verdict_of(hc, 0);
}

#endif /* AEGIS_LIB_DECIDE_H */
