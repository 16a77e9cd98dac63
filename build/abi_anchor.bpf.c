/* Compiled by build/gen_abi.ts only for its BTF: every ABI type the
 * TypeScript side decodes is referenced here, so clang emits it into BTF,
 * and the codecs in src/bpf/abi_gen.ts are generated from that BTF. The
 * anchor (every ABI type) is defined in bpf/include/aegis_abi.h. */
#include <linux/types.h>
#include "aegis_abi.h"

struct aegis_abi_anchor aegis_abi_anchor __attribute__((section(".data.abi"), used));
