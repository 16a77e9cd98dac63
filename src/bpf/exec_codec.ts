/**
 * Encoders for the exec surface's rule keys (bpf/include/aegis_abi.h):
 * struct aegis_comm_key for deny_comm. bpf/exec.bpf.c looks up the comm the
 * new program will get: the basename of the executed path, cut by the
 * kernel to TASK_COMM_LEN - 1 = 15 bytes. A longer rule could never match,
 * so it is refused instead of being cut silently.
 *
 * @module
 */
import { ABI_LAYOUT, AEGIS_COMM_LEN } from "./abi_gen.ts";
import { UsageError } from "../errors.ts";

/** Longest comm the kernel keeps (TASK_COMM_LEN - 1 bytes). */
export const COMM_MAX_BYTES = AEGIS_COMM_LEN - 1;

const K = ABI_LAYOUT.structs.aegis_comm_key;

/** The comm's bytes (UTF-8), or a UsageError saying why it can never match. */
export function commBytes(comm: string): Uint8Array {
  if (comm.length === 0) {
    throw new UsageError(
      'Invalid comm "": empty; give the executable\'s file name (at most 15 bytes)',
    );
  }
  if (comm.includes("\0")) {
    throw new UsageError(
      `Invalid comm ${JSON.stringify(comm)}: contains a NUL byte; a process name cannot`,
    );
  }
  if (comm.includes("/")) {
    throw new UsageError(
      `Invalid comm ${JSON.stringify(comm)}: contains "/"; the comm is the basename ` +
        "of the executed path, give only the file name",
    );
  }
  const bytes = new TextEncoder().encode(comm);
  if (bytes.length > COMM_MAX_BYTES) {
    throw new UsageError(
      `Invalid comm ${JSON.stringify(comm)}: ${bytes.length} bytes, the kernel keeps ` +
        `at most ${COMM_MAX_BYTES}; use the first ${COMM_MAX_BYTES} bytes of the name ` +
        "(what ps shows)",
    );
  }
  return bytes;
}

/** struct aegis_comm_key for `comm` in rule generation `gen`; padding zeroed. */
export function commKey(comm: string, gen: number): Uint8Array<ArrayBuffer> {
  const bytes = commBytes(comm);
  if (!Number.isInteger(gen) || gen < 0 || gen > 0xffffffff) {
    throw new UsageError(`Invalid rule generation ${gen}: must be a u32`);
  }
  const b = new Uint8Array(K.size);
  b.set(bytes, K.fields.comm.offset);
  new DataView(b.buffer).setUint32(K.fields.gen.offset, gen, true);
  return b;
}
