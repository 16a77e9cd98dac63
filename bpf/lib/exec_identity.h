/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * exec_identity.h — which content lists apply to an exec or an executable
 * file mapping, and what they say (docs/engine.md, "Exec identity by
 * content"). Pure: no map, no helper, no kernel type, so the same
 * function is compiled into bpf/exec_hash.bpf.c and into a host test that
 * walks every case (tests/artifacts/exec_identity_test.ts).
 *
 * The lists, one aegis_deny_hash entry per content with its flags OR-ed
 * (one lookup answers all of them):
 *  - [deny_binary_hash]  (AEGIS_RULE_DENY, switch AEGIS_POL_EXEC_HASH);
 *  - [allow_binary_hash] (AEGIS_RULE_ALLOW, switch AEGIS_POL_EXEC_ALLOWLIST);
 *  - [trusted_exec_hash] (AEGIS_RULE_TRUSTED, switch AEGIS_POL_EXEC_TRUSTED).
 * The allowlist and the trusted list apply to the exec program always,
 * and to the mapping program only with AEGIS_POL_RUNTIME_DEPS
 * ([protect_runtime_deps]); the deny list applies to both.
 *
 * Several lists at once: the most restrictive wins. A DENY entry denies
 * (once the file is hashed for any list, as before this header);
 * in allowlist mode a content without ALLOW is denied; in trusted mode a
 * content without TRUSTED is denied. A file with no SHA-256 (unknown
 * identity) is denied in allowlist mode (fail closed), in trusted mode
 * only with AEGIS_POL_IMA_FAIL_CLOSED, and allowed otherwise.
 */
#ifndef AEGIS_LIB_EXEC_IDENTITY_H
#define AEGIS_LIB_EXEC_IDENTITY_H

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* The verdict: allow, or deny by the DENY entry found, or deny because the
 * content is not on a list (the record's rule_flags then). */
#define AEGIS_ID_ALLOW 0
#define AEGIS_ID_DENY_ENTRY 1
#define AEGIS_ID_DENY_UNLISTED 2

/* The lists that apply at this hook, from the generation's policy flags. */
#define AEGIS_ID_LIST_DENY 1
#define AEGIS_ID_LIST_ALLOW 2
#define AEGIS_ID_LIST_TRUSTED 4

static __always_inline __u32 aegis_id_lists(__u64 pol, int mapping)
{
	int deps = !mapping || (pol & AEGIS_POL_RUNTIME_DEPS);
	__u32 lists = 0;

	if (pol & AEGIS_POL_EXEC_HASH)
		lists |= AEGIS_ID_LIST_DENY;
	if (deps && (pol & AEGIS_POL_EXEC_ALLOWLIST))
		lists |= AEGIS_ID_LIST_ALLOW;
	if (deps && (pol & AEGIS_POL_EXEC_TRUSTED))
		lists |= AEGIS_ID_LIST_TRUSTED;
	return lists;
}

/*
 * `lists`: aegis_id_lists (non-zero: the caller hashed the file); `known`:
 * the kernel gave a SHA-256; `entry`: the flags of its aegis_deny_hash
 * entry (0: none). On AEGIS_ID_DENY_UNLISTED, *rule_flags is what the
 * record says: AEGIS_RULE_UNLISTED for the allowlist, with
 * AEGIS_RULE_TRUSTED for the trusted list (the allowlist is named first
 * when both refuse).
 */
static __always_inline int aegis_id_verdict(__u32 lists, __u64 pol, int known, __u16 entry,
					    __u16 *rule_flags)
{
	if (!known) {
		if (lists & AEGIS_ID_LIST_ALLOW) {
			*rule_flags = AEGIS_RULE_UNLISTED;
			return AEGIS_ID_DENY_UNLISTED;
		}
		if ((lists & AEGIS_ID_LIST_TRUSTED) && (pol & AEGIS_POL_IMA_FAIL_CLOSED)) {
			*rule_flags = AEGIS_RULE_UNLISTED | AEGIS_RULE_TRUSTED;
			return AEGIS_ID_DENY_UNLISTED;
		}
		return AEGIS_ID_ALLOW;
	}
	/* a DENY entry denies whatever switch made the program hash the file */
	if (entry & AEGIS_RULE_DENY)
		return AEGIS_ID_DENY_ENTRY;
	if ((lists & AEGIS_ID_LIST_ALLOW) && !(entry & AEGIS_RULE_ALLOW)) {
		*rule_flags = AEGIS_RULE_UNLISTED;
		return AEGIS_ID_DENY_UNLISTED;
	}
	if ((lists & AEGIS_ID_LIST_TRUSTED) && !(entry & AEGIS_RULE_TRUSTED)) {
		*rule_flags = AEGIS_RULE_UNLISTED | AEGIS_RULE_TRUSTED;
		return AEGIS_ID_DENY_UNLISTED;
	}
	return AEGIS_ID_ALLOW;
}

#endif /* AEGIS_LIB_EXEC_IDENTITY_H */
