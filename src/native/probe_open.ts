/**
 * The rule-verification probe (ffi/aegis_probe.c): a child process moved
 * into a cgroup of the caller's choice tries to open each path the way a
 * workload would, and reports what the kernel answered. Only regular
 * files and directories are opened, through the inode an O_PATH open
 * found, and nothing is read (docs/posture.md, "Rule verification").
 *
 * @module
 */
import { AegisError, NativeCallError } from "../errors.ts";
import type { Shim } from "./shim.ts";

/** What the probe saw for one path. */
export interface PathProbe {
  /** errno of the O_PATH open (0: the path names something) */
  lookupErrno: number;
  /** errno of the open for reading (0: opened; null: not tried) */
  openErrno: number | null;
  /** user-space stat() identity (null when the lookup failed) */
  dev: number | null;
  ino: bigint | null;
  /** file type bits of st_mode (S_IFMT), null when the lookup failed */
  type: number | null;
}

export interface ProbeOpenResult {
  /** errno of the child's move into the cgroup (0 moved; -1 it never reported) */
  cgroupErrno: number;
  /** paths the child got through (all, unless it timed out) */
  done: number;
  timedOut: boolean;
  paths: PathProbe[];
}

const SLOTS = 5; // AEGIS_PROBE_SLOTS
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;

/**
 * Open `paths` from a child in the cgroup whose `cgroup.procs` file is
 * `cgroupProcs`. Throws NativeCallError only when no child could be
 * started; a timeout is reported in the result (what was done counts).
 */
export async function probeOpenPaths(
  shim: Shim,
  cgroupProcs: string,
  paths: readonly string[],
  timeoutMs: number,
): Promise<ProbeOpenResult> {
  const enc = new TextEncoder();
  const parts = paths.map((p) => {
    if (p.includes("\0")) {
      throw new AegisError("USAGE", `NUL byte in a probed path: ${JSON.stringify(p)}`);
    }
    return enc.encode(p + "\0");
  });
  const len = parts.reduce((a, b) => a + b.byteLength, 0);
  const blob = new Uint8Array(Math.max(1, len));
  let off = 0;
  for (const b of parts) {
    blob.set(b, off);
    off += b.byteLength;
  }
  const out = new BigInt64Array(2 + paths.length * SLOTS);
  const rc = await shim.lib.aegis_probe_open(
    enc.encode(cgroupProcs + "\0"),
    blob,
    len,
    paths.length,
    out,
    Math.max(1, Math.min(0xffff_ffff, Math.round(timeoutMs))),
  );
  const ETIMEDOUT = 110;
  if (rc < 0 && -rc !== ETIMEDOUT) {
    throw new NativeCallError("aegis_probe_open", -rc, `${paths.length} path(s)`);
  }
  const done = Number(out[1]);
  const res: PathProbe[] = [];
  for (let i = 0; i < Math.min(done, paths.length); i++) {
    const s = 2 + i * SLOTS;
    const lookupErrno = Number(out[s]);
    const ok = lookupErrno === 0;
    res.push({
      lookupErrno,
      openErrno: out[s + 1] === -1n ? null : Number(out[s + 1]),
      dev: ok ? Number(out[s + 2]) : null,
      ino: ok ? BigInt.asUintN(64, out[s + 3]) : null,
      type: ok ? Number(out[s + 4]) & S_IFMT : null,
    });
  }
  return { cgroupErrno: Number(out[0]), done, timedOut: rc < 0, paths: res };
}
