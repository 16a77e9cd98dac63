/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * lsm_rc.h — the return value of a deciding LSM hook, in a shape every
 * target verifier accepts. Since 6.12 the verifier checks that an LSM
 * program returns a value in [-MAX_ERRNO, 0]; clang knows aegis_verdict()
 * yields 0 or 1 and turns `action == BLOCK ? -EPERM : 0` into `-action`,
 * and BPF_NEG makes the 6.12 verifier forget the constant ("R0 has unknown
 * scalar value"). The empty asm hides the range from clang, so it emits a
 * compare and two constants instead.
 */
#ifndef AEGIS_LIB_LSM_RC_H
#define AEGIS_LIB_LSM_RC_H

#include "decide.h"

static __always_inline int aegis_lsm_rc(__u8 action)
{
	__u32 a = action;

	asm volatile("" : "+r"(a));
	if (a == AEGIS_ACT_BLOCK)
		return -AEGIS_EPERM;
	return 0;
}

#endif /* AEGIS_LIB_LSM_RC_H */
