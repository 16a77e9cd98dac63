/**
 * The tracepoint set (exec, openat): load the embedded object with only the
 * tracepoint programs, attach them, and hand out the event ring and the
 * counters. Used by `run --audit` and by the host tests and benchmarks.
 *
 * @module
 */
import type { Shim } from "../native/mod.ts";
import {
  AEGIS_CFG_TRACE_ENABLE,
  AEGIS_CFG_TRACE_TGID,
  AEGIS_CNT_EVENTS,
  AEGIS_CNT_RINGBUF_DROPS,
} from "./abi_gen.ts";
import { Engine, MAP_CONFIG, MAP_COUNTERS, MAP_EVENTS } from "./engine.ts";
import type { AttachResult, BpfObject } from "./object.ts";

export interface TraceOptions {
  /** Attach the openat tracepoint too (busy on a real host). */
  opens: boolean;
  /** Ring buffer bytes (power of two, >= page size). */
  ringBytes?: number;
  /** Only this tgid (0 = every process). */
  tgid?: number;
}

/** A loaded and attached tracepoint set. */
export class TraceSet implements Disposable {
  readonly obj: BpfObject;
  readonly attach: AttachResult[];

  private constructor(obj: BpfObject, attach: AttachResult[]) {
    this.obj = obj;
    this.attach = attach;
  }

  static load(shim: Shim, objectBytes: Uint8Array<ArrayBuffer>, opts: TraceOptions): TraceSet {
    // the engine's loader, narrowed to the telemetry tracepoints, unpinned
    const engine = Engine.start(shim, objectBytes, {
      pinRoot: null,
      fileHook: "file",
      execEvents: true,
      openEvents: opts.opens,
      ringBytes: opts.ringBytes,
      select: (section) => !section.startsWith("lsm"),
      hasBtfFunc: () => true, // LSM hooks are filtered out by `select` anyway
      configure: (obj) => {
        const cfg = obj.map(MAP_CONFIG);
        cfg.setU64(AEGIS_CFG_TRACE_TGID, BigInt(opts.tgid ?? 0));
        cfg.setU64(AEGIS_CFG_TRACE_ENABLE, 1n);
      },
    });
    return new TraceSet(engine.obj, engine.attach);
  }

  /** Turn emission on/off without detaching. */
  setEnabled(on: boolean): void {
    this.obj.map(MAP_CONFIG).setU64(AEGIS_CFG_TRACE_ENABLE, on ? 1n : 0n);
  }

  setTgid(tgid: number): void {
    this.obj.map(MAP_CONFIG).setU64(AEGIS_CFG_TRACE_TGID, BigInt(tgid));
  }

  /** Kernel counters summed over CPUs. */
  counters(): { events: bigint; ringbufDrops: bigint } {
    const c = this.obj.map(MAP_COUNTERS);
    return { events: c.sumU64(AEGIS_CNT_EVENTS), ringbufDrops: c.sumU64(AEGIS_CNT_RINGBUF_DROPS) };
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
