/**
 * The enforcement proof's probes (ffi/aegis_probe.c): a child process moved
 * into a cgroup of the caller's choice does what a workload would, and
 * reports what the kernel answered.
 *
 * - probeOpenPaths: rule verification. Opens each path; only regular
 *   files and directories, through the inode an O_PATH open found, and
 *   nothing is read (docs/posture.md, "Rule verification").
 * - probeConnect: the network canary. One non-blocking TCP connect.
 * - probeKernel: the kernel switches (ptrace, module load, bpf()), each
 *   attempt harmless if it is let through.
 *
 * @module
 */
import { NativeCallError, UsageError } from "../errors.ts";
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
const ETIMEDOUT = 110;
export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;

/**
 * Run one probe call of the shim: the cgroup.procs path as a C string, the
 * timeout clamped to a u32 of milliseconds. Returns whether it timed out
 * (what the child did before counts); throws NativeCallError when no child
 * could be started.
 */
async function callProbe(
  fn: string,
  what: string,
  cgroupProcs: string,
  timeoutMs: number,
  call: (procs: Uint8Array<ArrayBuffer>, timeout: number) => Promise<number>,
): Promise<boolean> {
  const rc = await call(
    new TextEncoder().encode(cgroupProcs + "\0"),
    Math.max(1, Math.min(0xffff_ffff, Math.round(timeoutMs))),
  );
  if (rc < 0 && -rc !== ETIMEDOUT) throw new NativeCallError(fn, -rc, what);
  return rc < 0;
}

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
      throw new UsageError(`NUL byte in a probed path: ${JSON.stringify(p)}`);
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
  const timedOut = await callProbe(
    "aegis_probe_open",
    `${paths.length} path(s)`,
    cgroupProcs,
    timeoutMs,
    (procs, t) => shim.lib.aegis_probe_open(procs, blob, len, paths.length, out, t),
  );
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
  return { cgroupErrno: Number(out[0]), done, timedOut, paths: res };
}

export interface ConnectProbe {
  /** errno of the child's move into the cgroup (0 moved; -1 it never reported) */
  cgroupErrno: number;
  /** errno of the connect (0 connected); null when no socket could be made */
  connectErrno: number | null;
  /** errno of socket() when it failed */
  socketErrno: number | null;
  timedOut: boolean;
}

/**
 * One non-blocking TCP connect to `ip4:port` (dotted quad) from a child in
 * the cgroup whose `cgroup.procs` file is `cgroupProcs`.
 */
export async function probeConnect(
  shim: Shim,
  cgroupProcs: string,
  ip4: string,
  port: number,
  timeoutMs: number,
): Promise<ConnectProbe> {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip4);
  const octets = m ? m.slice(1).map(Number) : [];
  if (octets.length !== 4 || octets.some((o) => o > 255)) {
    throw new UsageError(`not an IPv4 address: ${JSON.stringify(ip4)}`);
  }
  // network byte order in memory = the octets in order; as a little-endian u32 argument:
  const be = (octets[0] | (octets[1] << 8) | (octets[2] << 16) | (octets[3] << 24)) >>> 0;
  const out = new BigInt64Array(2);
  const timedOut = await callProbe(
    "aegis_probe_connect",
    `${ip4}:${port}`,
    cgroupProcs,
    timeoutMs,
    (procs, t) => shim.lib.aegis_probe_connect(procs, be, port, out, t),
  );
  const c = Number(out[1]);
  return {
    cgroupErrno: Number(out[0]),
    connectErrno: c < 0 ? null : c,
    socketErrno: c < 0 ? -c : null,
    timedOut,
  };
}

/** The kernel-surface attempts of probeKernel (AEGIS_PROBE_* in ffi/aegis_shim.h). */
export const KERNEL_OPS = { ptrace: 1, module: 2, bpf: 4 } as const;
export type KernelOp = keyof typeof KERNEL_OPS;

export interface KernelProbe {
  /** errno of the child's move into the cgroup (0 moved; -1 it never reported) */
  cgroupErrno: number;
  /** per attempt asked for: its errno (0 it succeeded), or null when it could not be made */
  results: Partial<Record<KernelOp, number | null>>;
  timedOut: boolean;
}

/**
 * Make the kernel-surface attempts `ops` from a child in the cgroup whose
 * `cgroup.procs` file is `cgroupProcs`.
 */
export async function probeKernel(
  shim: Shim,
  cgroupProcs: string,
  ops: readonly KernelOp[],
  timeoutMs: number,
): Promise<KernelProbe> {
  const mask = ops.reduce((m, o) => m | KERNEL_OPS[o], 0);
  const out = new BigInt64Array(4);
  const timedOut = await callProbe(
    "aegis_probe_kernel",
    ops.join(","),
    cgroupProcs,
    timeoutMs,
    (procs, t) => shim.lib.aegis_probe_kernel(procs, mask, out, t),
  );
  const results: KernelProbe["results"] = {};
  (["ptrace", "module", "bpf"] as const).forEach((op, i) => {
    if (!(mask & KERNEL_OPS[op])) return;
    const v = Number(out[1 + i]);
    results[op] = v < 0 ? null : v;
  });
  return { cgroupErrno: Number(out[0]), results, timedOut };
}
