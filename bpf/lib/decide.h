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
 *   action = aegis_verdict(&hc);                   // AEGIS_ACT_BLOCK or _AUDIT
 *   ... emit a block record with `action` ...
 *   return aegis_action_rc(action);
 * and a hook that passes on an earlier program's `ret` returns
 * aegis_lsm_ret(ret) too (see there: 6.12's verifier checks the range).
 * A full ring buffer never changes the verdict: the record is dropped and
 * counted, the decision stands.
 */
#ifndef AEGIS_LIB_DECIDE_H
#define AEGIS_LIB_DECIDE_H

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
 * The return code for a verdict: -EPERM for AEGIS_ACT_BLOCK, else 0.
 * clang knows aegis_verdict() yields 0 or 1 and would emit `-action`
 * (BPF_NEG), after which 6.12's verifier forgets the range; the empty asm
 * hides the range from clang, so it emits a compare and two constants.
 */
static __always_inline int aegis_action_rc(__u8 action)
{
	__u32 a = action;

	asm volatile("" : "+r"(a));
	if (a == AEGIS_ACT_BLOCK)
		return -AEGIS_EPERM;
	return 0;
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

/* A rule matched: block, or only report (audit mode, emergency disable,
 * break-glass). Counts the outcome in the hook's statistics. */
static __always_inline __u8 aegis_verdict(struct aegis_hook_ctx *hc)
{
	struct aegis_hook_stat *st = hc->st;
	__u8 action = AEGIS_ACT_BLOCK;

	if (aegis_config_get(AEGIS_CFG_AUDIT_ONLY) || aegis_config_get(AEGIS_CFG_EMERGENCY_DISABLE) ||
	    aegis_config_get(AEGIS_CFG_BREAK_GLASS))
		action = AEGIS_ACT_AUDIT;
	if (st) {
		if (action == AEGIS_ACT_BLOCK)
			st->blocks++;
		else
			st->audits++;
	}
	aegis_hook_latency(hc);
	return action;
}

#endif /* AEGIS_LIB_DECIDE_H */
