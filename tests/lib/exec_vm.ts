/**
 * Helpers of the exec-identity VM tests (tests/vm/exec_hash_vmtest.ts,
 * exec_trusted_vmtest.ts, exec_mprotect_vmtest.ts): the dynamic loader run
 * on a file; building programs, hashing them and picking the hash block
 * records are in ./exec_hash_testing.ts (re-exported here).
 *
 * @module
 */
export { gcc, hashBlocks, sha256 } from "./exec_hash_testing.ts";

/** The dynamic loader of the guest (x86-64). */
export const LOADER = "/lib64/ld-linux-x86-64.so.2";

/** `ld.so PATH`: what the program printed, and the loader's exit code and stderr. */
export function viaLoader(path: string): { code: number; out: string; err: string } {
  const o = new Deno.Command(LOADER, { args: [path] }).outputSync();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout).trim(), err: dec.decode(o.stderr).trim() };
}
