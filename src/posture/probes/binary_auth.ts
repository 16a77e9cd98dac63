/**
 * Probe (derived): readiness for fs-verity-backed binary authorization, as
 * the C++ agent defines `binary_auth`: the kernel has fs-verity, BPF LSM
 * works (listed and a program attaches) and the file xattr kfunc exists, so
 * an LSM program could check a file's verity digest and signature xattr.
 * This agent does not authorize binaries this way itself; the fact says what
 * the kernel would allow (docs/posture.md).
 *
 * @module
 */
import type { ProbeResult } from "../probe.ts";
import { unknown, unsupported } from "../probe.ts";
import type { NextGenBpf } from "./next_gen.ts";

export function probeBinaryAuth(
  fsVerity: ProbeResult<unknown>,
  bpfLsmActive: ProbeResult<unknown>,
  bpfLsmAttach: ProbeResult<unknown>,
  nextGen: ProbeResult<NextGenBpf>,
): ProbeResult {
  const xattr: ProbeResult<unknown> = nextGen.status === "supported"
    ? (nextGen.value.xattr_kfuncs
      ? { status: "supported", value: true }
      : unsupported("the kernel BTF has no bpf_get_file_xattr"))
    : nextGen;
  const parts: [string, ProbeResult<unknown>][] = [
    ["fs-verity", fsVerity],
    ["bpf in the LSM list", bpfLsmActive],
    ["an LSM program attaches", bpfLsmAttach],
    ["the bpf_get_file_xattr kfunc", xattr],
  ];
  const no = parts.filter(([, r]) => r.status === "unsupported").map(([n]) => n);
  if (no.length > 0) return unsupported(`missing: ${no.join(", ")}`);
  const unk = parts.filter(([, r]) => r.status === "unknown").map(([n]) => n);
  if (unk.length > 0) return unknown(`not determined: ${unk.join(", ")}`);
  return { status: "supported", value: true };
}
