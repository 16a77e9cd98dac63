/* Compiled by build/gen_abi.ts only for its BTF: every ABI type the
 * TypeScript side decodes is referenced here, so clang emits it into BTF,
 * and the codecs in src/bpf/abi_gen.ts are generated from that BTF. Add a
 * field here when you add a type to bpf/include/aegis_abi.h. */
#include <linux/types.h>
#include "aegis_abi.h"

struct aegis_abi_anchor {
	struct aegis_ev_hdr hdr;
	struct aegis_ev_proc proc;
	struct aegis_ev_exec exec;
	struct aegis_ev_open open;
	struct aegis_inode_key inode_key;
	enum aegis_ev_kind kind;
	enum aegis_ev_version version;
	enum aegis_abi_sizes sizes;
	enum aegis_counter counter;
	enum aegis_config_key config_key;
};

struct aegis_abi_anchor aegis_abi_anchor __attribute__((section(".data.abi"), used));
