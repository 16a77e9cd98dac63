/**
 * The fallback set for kernels without BPF LSM (docs/posture.md: AUDIT_FALLBACK and
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
import { UsageError } from "../errors.ts";
import type { Shim } from "../native/mod.ts";
import {
  AEGIS_CFG_SIGNAL,
  AEGIS_CNT_EVENTS,
  AEGIS_CNT_RINGBUF_DROPS,
  AEGIS_CNT_SIGNAL_SENT,
} from "./abi_gen.ts";
import type { BpfMap } from "./map.ts";
import { Engine, MAP_CONFIG, MAP_COUNTERS, MAP_EVENTS } from "./engine.ts";
export { FALLBACK_PROGRAMS } from "./engine.ts";
import type { AttachResult, BpfObject } from "./object.ts";
import type { MapName } from "./abi_gen.ts";

/** Signal numbers the fallback may send: 0 (off: audit only), SIGINT, SIGKILL, SIGTERM. */
export type FallbackSignal = 0 | 2 | 9 | 15;

export interface FallbackOptions {
  /** AEGIS_CFG_SIGNAL: 0 = audit only, else the signal sent on a match. */
  signal: FallbackSignal;
  /** Pin root (see engine.ts), or null/absent: the programs live as long as this set. */
  pinRoot?: string | null;
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
    const engine = Engine.start(shim, objectBytes, {
      mode: "fallback",
      signal: opts.signal,
      pinRoot: opts.pinRoot ?? null,
      fileHook: "file",
      ringBytes: opts.ringBytes,
    });
    return new FallbackSet(engine.obj, engine.attach);
  }

  /** Arm (2, 9, 15) or disarm (0) the signal without detaching. */
  setSignal(signal: FallbackSignal): void {
    checkSignal(signal);
    this.obj.map(MAP_CONFIG).setU64(AEGIS_CFG_SIGNAL, BigInt(signal));
  }

  /** A map of the loaded set (rules, policy, config…) by name. */
  map(name: MapName): BpfMap {
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
    throw new UsageError(
      `Fallback signal ${signal} is not allowed: use 0 (off), 2 (SIGINT), 9 (SIGKILL) or 15 (SIGTERM)`,
    );
  }
}
