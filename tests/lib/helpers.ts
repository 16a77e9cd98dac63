/**
 * Shared helpers for the artifacts and host test tiers.
 *
 * @module
 */

export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");
export const NATIVE_DIR = `${ROOT}/dist/native`;
export const SHIM_SO = `${NATIVE_DIR}/libaegis_shim.so`;
export const BPF_OBJ = `${NATIVE_DIR}/aegis.bpf.o`;
export const LAUNCHER = `${ROOT}/scripts/aegisbpf`;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to completion and capture its output; `input` is its stdin (else none). */
export async function run(
  cmd: string,
  args: string[],
  env?: Record<string, string>,
  input?: string,
): Promise<RunResult> {
  const stdin = input === undefined ? "null" : "piped";
  const p = new Deno.Command(cmd, { args, stdin, stdout: "piped", stderr: "piped", env }).spawn();
  if (input !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const r = await p.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

/** bpftool's BTF of an object file as JSON. */
export async function btfOf(path: string): Promise<unknown> {
  const r = await run("bpftool", ["-j", "btf", "dump", "file", path]);
  if (r.code !== 0) throw new Error(`bpftool failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

export { kernelDev } from "../../src/bpf/rule_codec.ts";

/** "ok", or "EPERM/EACCES" (Deno reports both as PermissionDenied), for opening `path`. */
export function tryOpen(path: string): string {
  try {
    Deno.openSync(path).close();
    return "ok";
  } catch (e) {
    return e instanceof Deno.errors.PermissionDenied ? "EPERM/EACCES" : String(e);
  }
}

/** Poll `f` until it returns "ok" (at most 5 s); returns its last answer. The kernel
 * frees an unpinned link from a work queue, so a detach follows a moment later. */
export async function eventually(f: () => string): Promise<string> {
  let v = f();
  for (let i = 0; i < 100 && v !== "ok"; i++) {
    await new Promise((r) => setTimeout(r, 50));
    v = f();
  }
  return v;
}
