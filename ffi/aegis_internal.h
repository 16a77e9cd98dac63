/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Internal helpers shared by the shim's translation units (hidden symbols). */
#ifndef AEGIS_INTERNAL_H
#define AEGIS_INTERNAL_H

#include <errno.h>
#include <stdint.h>

/* Every exported symbol comes from the public header; only its declarations
 * get default visibility (the build uses -fvisibility=hidden). */
#pragma GCC visibility push(default)
#include "aegis_shim.h"
#pragma GCC visibility pop

/* -errno of the last failed libc/libbpf call, never 0. */
static inline int aegis_neg_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* Copy a NUL-terminated string into buf; returns its length or -errno. */
int aegis_copy_str(const char *s, char *buf, uint32_t cap);

#endif /* AEGIS_INTERNAL_H */
