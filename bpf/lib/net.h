/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * net.h — the network decision shared by lsm/socket_connect,
 * lsm/socket_bind and lsm/socket_sendmsg (docs/engine.md). Order:
 * no network rules in the live generation → allow; the agent's own cgroup
 * or a globally allowed cgroup → allow; then the first deny rule found in
 *   exact ip → cidr (LPM) → ip:port (proto, then any) →
 *   port ((proto, dir), (any, dir), (proto, both), (any, both))
 * blocks (or audits). Address rules name destinations, so they apply to
 * connect and sendmsg only; bind is checked against port rules (dir bind
 * or both). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is checked
 * against the IPv6 and the IPv4 rules.
 *
 * The sockaddr is read by its own family, as the kernel does: an AF_INET6
 * UDP socket sends to and connects to AF_INET addresses, and an AF_INET
 * socket takes AF_UNSPEC as AF_INET in bind() and sendmsg(). AF_UNSPEC in
 * connect() is a disconnect and is not checked. Every sockaddr the LSM
 * hooks see is a kernel copy (move_addr_to_kernel), so it is read with
 * bpf_probe_read_kernel, never more than the length the caller gave.
 */
#ifndef AEGIS_LIB_NET_H
#define AEGIS_LIB_NET_H

#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>

#include "decide.h"
#include "event.h"
#include "verified.h"

#define AEGIS_AF_UNSPEC 0
#define AEGIS_AF_INET 2
#define AEGIS_AF_INET6 10
#define AEGIS_IPPROTO_TCP 6
#define AEGIS_IPPROTO_UDP 17
#define AEGIS_DIR_EGRESS 0
#define AEGIS_DIR_BIND 1
#define AEGIS_DIR_BOTH 2
#define AEGIS_SIN_LEN 16  /* sizeof(struct sockaddr_in) */
#define AEGIS_SIN6_LEN 24 /* SIN6_LEN_RFC2133: what inet6 requires, no scope id */

/* What a hook is about to do, decoded from the socket and the sockaddr. */
struct aegis_net_target {
	__u8 addr[16]; /* network byte order; IPv4 in the first 4 bytes */
	__u32 addr4;   /* IPv4 (native or mapped) to check v4 rules; network order */
	__u16 port;    /* host byte order */
	__u8 family;   /* AF_INET / AF_INET6 of the sockaddr */
	__u8 proto;    /* 6, 17, or 0 for anything else */
	__u8 has_v4;   /* check the IPv4 rules (AF_INET, or v4-mapped AF_INET6) */
	__u8 dir;      /* AEGIS_DIR_EGRESS or AEGIS_DIR_BIND */
	__u8 check_addr; /* address rules apply (egress only) */
	__u8 pad;
};

/* A socket's protocol as the rules name it: 6, 17, else 0. */
static __always_inline __u8 aegis_net_proto(__u16 p)
{
	return (p == AEGIS_IPPROTO_TCP || p == AEGIS_IPPROTO_UDP) ? (__u8)p : 0;
}

/*
 * Fill `t` from a sockaddr of `len` bytes at `sa` (kernel memory: the LSM
 * hooks' copy, or the fallback's stack copy), for a socket of
 * `sock_family` and protocol `proto` (aegis_net_proto). 0 when there is
 * something to check, else 1 (other family, too short: the kernel itself
 * rejects or ignores it). One read of AEGIS_SIN6_LEN bytes: the kernel's
 * copy is a struct sockaddr_storage (128 bytes), so the bytes past `len`
 * exist; they are never used.
 */
static __always_inline int aegis_net_target_of(struct aegis_net_target *t, __u16 sock_family,
					       __u8 proto, void *sa, int len, __u8 dir, __u32 hook)
{
	__u8 buf[AEGIS_SIN6_LEN] = {};
	__u16 family;

	if (sock_family != AEGIS_AF_INET && sock_family != AEGIS_AF_INET6)
		return 1;
	if (!sa || len < (int)sizeof(family))
		return 1;
	if (bpf_probe_read_kernel(buf, sizeof(buf), sa))
		return 1;
	family = ((struct sockaddr *)buf)->sa_family;
	if (family == AEGIS_AF_UNSPEC && sock_family == AEGIS_AF_INET &&
	    hook != AEGIS_HOOK_SOCKET_CONNECT)
		family = AEGIS_AF_INET;
	t->proto = proto;
	t->dir = dir;
	t->check_addr = dir == AEGIS_DIR_EGRESS;
	if (family == AEGIS_AF_INET) {
		struct sockaddr_in *sin = (void *)buf;

		if (len < AEGIS_SIN_LEN)
			return 1;
		t->family = AEGIS_AF_INET;
		t->port = bpf_ntohs(sin->sin_port);
		t->addr4 = sin->sin_addr.s_addr;
		__builtin_memcpy(t->addr, &t->addr4, 4);
		t->has_v4 = 1;
		return 0;
	}
	if (family == AEGIS_AF_INET6) {
		struct sockaddr_in6 *sin6 = (void *)buf;
		__u32 w0, w1, w2;

		if (len < AEGIS_SIN6_LEN)
			return 1;
		t->family = AEGIS_AF_INET6;
		t->port = bpf_ntohs(sin6->sin6_port);
		__builtin_memcpy(t->addr, sin6->sin6_addr.in6_u.u6_addr8, 16);
		w0 = sin6->sin6_addr.in6_u.u6_addr32[0];
		w1 = sin6->sin6_addr.in6_u.u6_addr32[1];
		w2 = sin6->sin6_addr.in6_u.u6_addr32[2];
		if (w0 == 0 && w1 == 0 && w2 == bpf_htonl(0x0000ffff)) {
			t->addr4 = sin6->sin6_addr.in6_u.u6_addr32[3];
			t->has_v4 = 1;
		}
		return 0;
	}
	return 1;
}

/* A rule counts with the deny flag, or with the protect flag
 * (protect_connect) for an unverified task (lib/verified.h). */
static __always_inline struct aegis_rule *aegis_net_deny(struct aegis_rule *r)
{
	return (r && aegis_rule_enforced(r)) ? r : 0;
}

static __always_inline struct aegis_rule *aegis_net_ip(struct aegis_net_target *t, __u32 gen)
{
	struct aegis_rule *r = 0;

	if (t->family == AEGIS_AF_INET6) {
		struct aegis_ip6_key k6 = { .gen = gen };

		__builtin_memcpy(k6.addr, t->addr, 16);
		r = aegis_net_deny(bpf_map_lookup_elem(&aegis_deny_ip6, &k6));
	}
	if (!r && t->has_v4) {
		struct aegis_ip4_key k4 = { .gen = gen, .addr = t->addr4 };

		r = aegis_net_deny(bpf_map_lookup_elem(&aegis_deny_ip4, &k4));
	}
	return r;
}

static __always_inline struct aegis_rule *aegis_net_cidr(struct aegis_net_target *t, __u32 gen)
{
	struct aegis_rule *r = 0;

	if (t->family == AEGIS_AF_INET6) {
		struct aegis_lpm6_key k6 = { .prefixlen = 32 + 128, .gen = gen };

		__builtin_memcpy(k6.addr, t->addr, 16);
		r = aegis_net_deny(bpf_map_lookup_elem(&aegis_deny_cidr6, &k6));
	}
	if (!r && t->has_v4) {
		struct aegis_lpm4_key k4 = { .prefixlen = 32 + 32, .gen = gen, .addr = t->addr4 };

		r = aegis_net_deny(bpf_map_lookup_elem(&aegis_deny_cidr4, &k4));
	}
	return r;
}

static __always_inline struct aegis_rule *aegis_net_ip_port6(struct aegis_net_target *t,
							     __u32 gen, __u8 proto)
{
	struct aegis_ip6_port_key k = { .gen = gen, .port = t->port, .proto = proto };

	__builtin_memcpy(k.addr, t->addr, 16);
	return aegis_net_deny(bpf_map_lookup_elem(&aegis_deny_ip6_port, &k));
}

static __always_inline struct aegis_rule *aegis_net_ip_port4(struct aegis_net_target *t,
							     __u32 gen, __u8 proto)
{
	struct aegis_ip4_port_key k = { .gen = gen, .addr = t->addr4, .port = t->port,
					.proto = proto };

	return aegis_net_deny(bpf_map_lookup_elem(&aegis_deny_ip4_port, &k));
}

static __always_inline struct aegis_rule *aegis_net_ip_port(struct aegis_net_target *t, __u32 gen)
{
	struct aegis_rule *r = 0;

	if (t->family == AEGIS_AF_INET6) {
		r = aegis_net_ip_port6(t, gen, t->proto);
		if (!r)
			r = aegis_net_ip_port6(t, gen, 0);
	}
	if (!r && t->has_v4) {
		r = aegis_net_ip_port4(t, gen, t->proto);
		if (!r)
			r = aegis_net_ip_port4(t, gen, 0);
	}
	return r;
}

static __always_inline struct aegis_rule *aegis_net_port1(struct aegis_net_target *t, __u32 gen,
							  __u8 proto, __u8 dir)
{
	struct aegis_port_key k = { .gen = gen, .port = t->port, .proto = proto, .dir = dir };

	return aegis_net_deny(bpf_map_lookup_elem(&aegis_deny_port, &k));
}

static __always_inline struct aegis_rule *aegis_net_port(struct aegis_net_target *t, __u32 gen)
{
	struct aegis_rule *r = aegis_net_port1(t, gen, t->proto, t->dir);

	if (!r)
		r = aegis_net_port1(t, gen, 0, t->dir);
	if (!r)
		r = aegis_net_port1(t, gen, t->proto, AEGIS_DIR_BOTH);
	if (!r)
		r = aegis_net_port1(t, gen, 0, AEGIS_DIR_BOTH);
	return r;
}

/* Cgroup-scoped rules for the current cgroup: address (egress only), then
 * port with the same (proto, dir) fallbacks as the global port rules. */
static __always_inline struct aegis_rule *aegis_net_cg_port1(struct aegis_net_target *t,
							     __u64 cgid, __u32 gen, __u8 proto,
							     __u8 dir)
{
	struct aegis_cg_port_key k = {
		.cgid = cgid, .gen = gen, .port = t->port, .proto = proto, .dir = dir
	};

	return aegis_net_deny(bpf_map_lookup_elem(&aegis_cg_deny_port, &k));
}

static __always_inline struct aegis_rule *aegis_net_cg_match(struct aegis_net_target *t,
							     __u32 gen, __u8 *rt)
{
	__u64 cgid = bpf_get_current_cgroup_id();
	struct aegis_cg_ip_key k = {};
	struct aegis_rule *r;

	if (t->check_addr) {
		*rt = AEGIS_RT_CG_IP;
		k.cgid = cgid;
		k.gen = gen;
		if (t->has_v4) {
			k.family = AEGIS_AF_INET;
			__builtin_memcpy(k.addr, &t->addr4, 4);
			r = aegis_net_deny(bpf_map_lookup_elem(&aegis_cg_deny_ip, &k));
			if (r)
				return r;
		}
		if (t->family == AEGIS_AF_INET6) {
			k.family = AEGIS_AF_INET6;
			__builtin_memcpy(k.addr, t->addr, 16);
			r = aegis_net_deny(bpf_map_lookup_elem(&aegis_cg_deny_ip, &k));
			if (r)
				return r;
		}
	}
	*rt = AEGIS_RT_CG_PORT;
	r = aegis_net_cg_port1(t, cgid, gen, t->proto, t->dir);
	if (!r)
		r = aegis_net_cg_port1(t, cgid, gen, 0, t->dir);
	if (!r)
		r = aegis_net_cg_port1(t, cgid, gen, t->proto, AEGIS_DIR_BOTH);
	if (!r)
		r = aegis_net_cg_port1(t, cgid, gen, 0, AEGIS_DIR_BOTH);
	return r;
}

/* May the generation with these flags hold a rule in the table `bit`? */
static __always_inline int aegis_net_table(__u64 flags, __u64 bit)
{
	return !(flags & AEGIS_POL_NET_TABLES) || (flags & bit);
}

/* First matching deny rule in the order of docs/engine.md; *rt says which
 * table. Tables the generation's flags say are empty are not looked up. */
static __always_inline struct aegis_rule *aegis_net_match(struct aegis_net_target *t, __u32 gen,
							  __u64 flags, __u8 *rt)
{
	struct aegis_rule *r;

	if (t->check_addr) {
		*rt = AEGIS_RT_IP;
		r = aegis_net_table(flags, AEGIS_POL_NET_IP) ? aegis_net_ip(t, gen) : 0;
		if (r)
			return r;
		*rt = AEGIS_RT_CIDR;
		r = aegis_net_table(flags, AEGIS_POL_NET_CIDR) ? aegis_net_cidr(t, gen) : 0;
		if (r)
			return r;
		*rt = AEGIS_RT_IP_PORT;
		r = aegis_net_table(flags, AEGIS_POL_NET_IP_PORT) ? aegis_net_ip_port(t, gen) : 0;
		if (r)
			return r;
	}
	*rt = AEGIS_RT_PORT;
	return aegis_net_table(flags, AEGIS_POL_NET_PORT) ? aegis_net_port(t, gen) : 0;
}

static __always_inline void aegis_emit_net_block(struct aegis_hook_ctx *hc,
						 struct aegis_net_target *t, struct aegis_rule *r,
						 __u8 rt, __u8 action)
{
	struct aegis_ev_net_block *ev = aegis_ev_reserve(sizeof(*ev));

	if (!ev)
		return;
	__builtin_memset(ev, 0, sizeof(*ev));
	aegis_fill_hdr(&ev->hdr, sizeof(*ev), AEGIS_EV_NET_BLOCK, AEGIS_EV_NET_BLOCK_V2);
	aegis_fill_proc(&ev->proc);
	__builtin_memcpy(ev->addr, t->addr, 16);
	ev->rule_id = r->rule_id;
	ev->port = t->port;
	ev->family = t->family;
	ev->proto = t->proto;
	ev->action = action;
	ev->hook = (__u8)hc->hook;
	ev->rule_type = rt;
	aegis_ev_submit(ev);
}

/* 0 to allow, -EPERM to deny; emits a record for every match. */
static __always_inline int aegis_net_decide(struct aegis_hook_ctx *hc, struct aegis_net_target *t)
{
	struct aegis_rule *r;
	__u8 rt = 0;
	__u8 action;

	__u64 flags = hc->flags;

	if (!(flags & AEGIS_POL_NET_RULES))
		return 0;
	/* the exemptions are looked at only once a rule matched: the allow
	 * path is the rule lookups alone */
	r = aegis_net_match(t, hc->gen, flags, &rt);
	if (r && aegis_in_allow_cgroup(hc->gen))
		r = 0; /* waives global rules only */
	if (!r && (flags & AEGIS_POL_CGROUP_RULES))
		r = aegis_net_cg_match(t, hc->gen, &rt);
	if (!r || aegis_is_agent())
		return aegis_hook_allow(hc);
	action = aegis_verdict(hc);
	aegis_emit_net_block(hc, t, r, rt, action);
	return aegis_action_rc(action);
}

/* The whole hook after `ret` was checked: decode, then decide. */
static __always_inline int aegis_net_hook(struct socket *sock, void *sa, int len, __u32 hook,
					  __u8 dir)
{
	/* BTF pointers: direct loads, no helper call (6.12's verifier knows
	 * socket->sk may be NULL and wants the check) */
	struct sock *sk = sock->sk;
	struct aegis_net_target t = {};
	struct aegis_hook_ctx hc;

	if (!sk)
		return 0;
	if (aegis_net_target_of(&t, sk->__sk_common.skc_family, aegis_net_proto(sk->sk_protocol),
				sa, len, dir, hook))
		return 0;
	aegis_hook_enter(&hc, hook);
	return aegis_net_decide(&hc, &t);
}

#endif /* AEGIS_LIB_NET_H */
