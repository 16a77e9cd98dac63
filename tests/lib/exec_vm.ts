/**
 * Helpers of the exec-identity VM tests (tests/vm/exec_hash_vmtest.ts,
 * exec_trusted_vmtest.ts): build test programs in the guest, hash them as
 * the kernel does (SHA-256 of the content), run the dynamic loader, and
 * pick the hash block records out of what the engine drained.
 *
 * @module
 */
import { strictEqual } from "node:assert/strict";
import type { FileBlockRecord, KernelRecord } from "../../src/events/decode.ts";

/** The dynamic loader of the guest (x86-64). */
export const LOADER = "/lib64/ld-linux-x86-64.so.2";

/** Compile `src` (C) to `out` with gcc -O1 and `extra` flags; the source is kept beside it. */
export function gcc(src: string, out: string, extra: string[] = []): void {
  const c = `${out}.c`;
  Deno.writeTextFileSync(c, src);
  const r = new Deno.Command("gcc", { args: ["-O1", ...extra, "-o", out, c] }).outputSync();
  strictEqual(r.code, 0, `gcc ${out}: ${new TextDecoder().decode(r.stderr)}`);
}

/** The SHA-256 of a file's content (a symlink's target), lower-case hex. */
export async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", Deno.readFileSync(Deno.realPathSync(path)));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** `ld.so PATH`: what the program printed, and the loader's exit code and stderr. */
export function viaLoader(path: string): { code: number; out: string; err: string } {
  const o = new Deno.Command(LOADER, { args: [path] }).outputSync();
  const dec = new TextDecoder();
  return { code: o.code, out: dec.decode(o.stdout).trim(), err: dec.decode(o.stderr).trim() };
}

/** The hash block records (AEGIS_EV_HASH_BLOCK: a file block with a digest) among `recs`. */
export function hashBlocks(recs: KernelRecord[]): FileBlockRecord[] {
  return recs.filter((r): r is FileBlockRecord =>
    r.kind === "file_block" && r.sha256 !== undefined
  );
}
