/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * aegis.bpf.c — the one translation unit that becomes dist/native/aegis.bpf.o.
 * Each program set lives in its own file; the maps (include/aegis_maps.h)
 * are defined once here. (`bpftool gen object` of per-file objects also
 * works with bpftool 7.1 / libbpf 1.1, but only if every shared map is
 * __weak — strong duplicates fail with "conflicting non-weak symbol"; one
 * translation unit keeps strong, single definitions and one clang call.)
 */
#include "trace.bpf.c"
#include "file.bpf.c"
#include "exec.bpf.c"
#include "exec_hash.bpf.c"
#include "kernel.bpf.c"
#include "net.bpf.c"
#include "protect.bpf.c"
#include "fallback.bpf.c"
#include "self.bpf.c"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/*
 * ABI anchor: puts every record, key and enum of aegis_abi.h into the
 * object's BTF (ring records only live in locals, which BTF does not keep),
 * so user space can generate and check its codecs against the object.
 * A global function nobody calls: libbpf never loads it, it is not listed
 * as a program, and it costs nothing at run time. The anchor struct itself
 * (every ABI type by value) is defined in aegis_abi.h.
 */
__noinline int aegis_abi_types(struct aegis_abi_anchor *anchor)
{
	return anchor != 0;
}
