/**
 * The fallback set for kernels without BPF LSM (SPEC §3: AUDIT_FALLBACK and
 * ENFORCE_SIGNAL): load the embedded object with only the observe-only
 * tracepoint programs of bpf/fallback.bpf.c (sys_exit_openat/openat2/open,
 * tp_btf sched_process_exec, sys_enter_connect; that file says why not
 * fentry), attach them, arm or disarm the signal, and hand out the maps. They share the enforcement
 * maps (rules, policy, config, survival allowlist) and decision helpers
 * with the LSM programs; a match emits a block record with action AUDIT,
 * or signals the process (KILL / TERM / INT) when a signal is armed and
 * the mode enforces. They never deny a syscall.
 *
 * @module
 */
import { AegisError } from "../errors.ts";
import type { Shim } from "../native/mod.ts";
import {
  AEGIS_CFG_SIGNAL,
  AEGIS_CNT_EVENTS,
  AEGIS_CNT_RINGBUF_DROPS,
  AEGIS_CNT_SIGNAL_SENT,
} from "./abi_gen.ts";
import type { BpfMap } from "./map.ts";
import { type AttachResult, BpfObject } from "./object.ts";

/** Every fallback program; all must attach. */
export const FALLBACK_PROGRAMS: readonly string[] = [
  "aegis_fb_openat",
  "aegis_fb_openat2",
  "aegis_fb_open",
  "aegis_fb_exec",
  "aegis_fb_connect",
];
export const MAP_EVENTS = "aegis_events";
export const MAP_COUNTERS = "aegis_counters";
export const MAP_CONFIG = "aegis_config";

/** Signal numbers the fallback may send: 0 (off: audit only), SIGINT, SIGKILL, SIGTERM. */
export type FallbackSignal = 0 | 2 | 9 | 15;

export interface FallbackOptions {
  /** AEGIS_CFG_SIGNAL: 0 = audit only, else the signal sent on a match. */
  signal: FallbackSignal;
  /** Pinning is not supported yet: the programs live as long as this set. */
  pinRoot?: null;
  /** Ring buffer bytes (power of two, >= page size). */
  ringBytes?: number;
}

const SIGNALS: readonly number[] = [0, 2, 9, 15];

/** A loaded and attached fallback set. */
export class FallbackSet implements Disposable {
  readonly obj: BpfObject;
  readonly attach: AttachResult[];

  private constructor(obj: BpfObject, attach: AttachResult[]) {
    this.obj = obj;
    this.attach = attach;
  }

  static load(
    shim: Shim,
    objectBytes: Uint8Array<ArrayBuffer>,
    opts: FallbackOptions,
  ): FallbackSet {
    checkSignal(opts.signal);
    if (opts.pinRoot !== undefined && opts.pinRoot !== null) {
      throw new AegisError(
        "USAGE",
        "The fallback programs cannot be pinned yet; pass pinRoot: null",
      );
    }
    const obj = BpfObject.open(shim, objectBytes);
    try {
      const want = new Set(FALLBACK_PROGRAMS);
      const missing = FALLBACK_PROGRAMS.filter((p) => !obj.programs.includes(p));
      if (missing.length > 0) {
        throw new AegisError(
          "ABI_MISMATCH",
          `The BPF object has no program ${missing.map((p) => `"${p}"`).join(", ")}`,
        );
      }
      obj.selectPrograms((p) => want.has(p));
      if (opts.ringBytes) obj.setMaxEntries(MAP_EVENTS, opts.ringBytes);
      obj.load();
      // Armed before attach: no window where a match is only audited.
      obj.map(MAP_CONFIG).setU64(AEGIS_CFG_SIGNAL, BigInt(opts.signal));
      const res = obj.attachAll();
      const failed = res.filter((r) => want.has(r.program) && r.status !== "attached");
      if (failed.length > 0) {
        throw new AegisError(
          "ATTACH_CONTRACT_MISMATCH",
          `Could not attach the fallback programs: ${
            failed.map((f) => `${f.section} (${f.errnoName ?? f.status})`).join(", ")
          }. They need syscall tracepoints (tracefs: mount -t tracefs tracefs /sys/kernel/tracing) ` +
            `and BTF tracepoints (/sys/kernel/btf/vmlinux).`,
        );
      }
      return new FallbackSet(obj, res);
    } catch (e) {
      obj.close();
      throw e;
    }
  }

  /** Arm (2, 9, 15) or disarm (0) the signal without detaching. */
  setSignal(signal: FallbackSignal): void {
    checkSignal(signal);
    this.obj.map(MAP_CONFIG).setU64(AEGIS_CFG_SIGNAL, BigInt(signal));
  }

  /** A map of the loaded set (rules, policy, config…) by name. */
  map(name: string): BpfMap {
    return this.obj.map(name);
  }

  /** Kernel counters summed over CPUs. */
  counters(): { events: bigint; ringbufDrops: bigint; signalsSent: bigint } {
    const c = this.obj.map(MAP_COUNTERS);
    return {
      events: c.sumU64(AEGIS_CNT_EVENTS),
      ringbufDrops: c.sumU64(AEGIS_CNT_RINGBUF_DROPS),
      signalsSent: c.sumU64(AEGIS_CNT_SIGNAL_SENT),
    };
  }

  eventsFd(): number {
    return this.obj.map(MAP_EVENTS).fd;
  }

  close(): void {
    this.obj.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function checkSignal(signal: number): void {
  if (!SIGNALS.includes(signal)) {
    throw new AegisError(
      "USAGE",
      `Fallback signal ${signal} is not allowed: use 0 (off), 2 (SIGINT), 9 (SIGKILL) or 15 (SIGTERM)`,
    );
  }
}
