/**
 * Helpers the exec-identity VM tests share (exec_hash_vmtest.ts,
 * exec_mprotect_vmtest.ts): build a test program in the guest, hash a file
 * as the rules name it, keep the hash block records, and the cgroup id the
 * agent's exemption needs.
 *
 * @module
 */
import { ok, strictEqual } from "node:assert/strict";
import type { FileBlockRecord, KernelRecord } from "../../src/events/decode.ts";

/** gcc -O1 EXTRA -o OUT from the C source `src` (written next to OUT). */
export function gcc(src: string, out: string, extra: string[] = []): void {
  const c = `${out}.c`;
  Deno.writeTextFileSync(c, src);
  const r = new Deno.Command("gcc", { args: ["-O1", ...extra, "-o", out, c] }).outputSync();
  strictEqual(r.code, 0, `gcc ${out}: ${new TextDecoder().decode(r.stderr)}`);
}

/** The file's SHA-256, 64 lower-case hex digits (as [deny_binary_hash] names it). */
export async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The hash block records (AEGIS_EV_HASH_BLOCK) among `recs`. */
export function hashBlocks(recs: KernelRecord[]): FileBlockRecord[] {
  return recs.filter((r): r is FileBlockRecord =>
    r.kind === "file_block" && r.sha256 !== undefined
  );
}

/** The cgroup v2 id of this process (= inode of its cgroup directory). */
export function ownCgroupId(): bigint {
  const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n").find((l) =>
    l.startsWith("0::")
  );
  ok(line, "cgroup v2 membership in /proc/self/cgroup");
  return BigInt(Deno.statSync(`/sys/fs/cgroup${line.slice(3)}`.replace(/\/$/, "")).ino!);
}

/** A test program that prints `word` (built -static: any copy runs anywhere). */
export const wordProgram = (word: string): string =>
  String.raw`
#include <stdio.h>
int main(void) { puts("${word}"); return 0; }
`;

/** The files every exec-identity test works with. */
export interface ExecWork {
  /** a directory on the guest's root (overlayfs) */
  root: string;
  /** a directory on /tmp (tmpfs) */
  tmp: string;
  /** the test's helper program, built from its C source */
  helper: string;
  /** the content the tests deny (prints "denied-ran"), and its digest */
  bin: string;
  sha: string;
  /** a different content, in no list (prints "other-ran") */
  other: string;
}

/** Build the helper (`name`, from `src`) and the two static programs in fresh directories. */
export async function execWork(prefix: string, name: string, src: string): Promise<ExecWork> {
  Deno.mkdirSync("/var/tmp", { recursive: true });
  const root = Deno.makeTempDirSync({ dir: "/var/tmp", prefix });
  const tmp = Deno.makeTempDirSync({ dir: "/tmp", prefix });
  gcc(src, `${root}/${name}`);
  gcc(wordProgram("denied-ran"), `${root}/target`, ["-static"]);
  gcc(wordProgram("other-ran"), `${root}/other`, ["-static"]);
  return {
    root,
    tmp,
    helper: `${root}/${name}`,
    bin: `${root}/target`,
    sha: await sha256(`${root}/target`),
    other: `${root}/other`,
  };
}
