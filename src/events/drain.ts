/**
 * The ring-buffer drain: one synchronous FFI call copies a batch of
 * records into a buffer this class owns, then the batch is decoded in
 * TypeScript. No per-event FFI call, no callback from C.
 *
 * A timer drives it while records flow (every `intervalMs`, default 10 ms:
 * ≈ 1 M events/s at ≈ 2.5 % CPU this way, measured). Each tick drains until
 * the ring is empty or `maxBatchesPerTick` batches were taken, so a burst
 * cannot starve the event loop (HTTP keeps answering).
 *
 * When a tick finds the ring empty, the drain sleeps in the kernel instead
 * of ticking: one nonblocking `wait` (epoll on the ring, off the main
 * thread) returns as soon as the kernel wakes the ring (a record submitted
 * with a wake-up: blocks, a ring a quarter full), or after `idleWaitMs`.
 * An idle agent so wakes a few times a second instead of 100 times (host:
 * 3.4 % of a core idle → 0.5 %). A wake-up by a record does not drain at
 * once: the drain waits `batchWindowMs` (default: one interval) so the
 * records that follow it are taken in the same batch. Without that window,
 * a workload that emits a record now and then (an exec loop: one exec and
 * one exec_argv record each) woke the agent once per record, and on a
 * one-CPU machine every wake-up preempts the workload (docs/benchmarks.md).
 * While the window runs the kernel sends no further wake-ups (the ring
 * notifies only a consumer that has caught up).
 *
 * A trickle counts as empty: a tick that took less than `lowWaterBytes`
 * (default an eighth of the buffer) also sleeps in the kernel. Telemetry
 * (exec records) is submitted without a wake-up (bpf/lib/event.h), so under
 * a steady exec loop the drain would otherwise tick every interval for a
 * handful of records, and each tick's fixed cost (timer, FFI call, sink
 * write) was most of what the agent cost per exec on a one-CPU guest. The
 * kernel still wakes the drain at once for a block record and when the ring
 * is a quarter full, so denials are not delayed and a burst is not dropped;
 * telemetry may wait up to `idleWaitMs`. `stop()` ends the timer;
 * `settled()` resolves once no wait is left in native code (await it before
 * the ring or the shim is closed).
 *
 * @module
 */
import { NativeCallError } from "../errors.ts";
import type { NativeRing } from "../native/mod.ts";
import { forEachRecord, type KernelRecord, type RecordError } from "./decode.ts";

const EMSGSIZE = 90;
const MAX_BUFFER = 16 << 20;

export interface DrainStats {
  /** times the buffer had to grow for a record larger than it */
  bufferGrowths: number;
  records: number;
  decoded: number;
  rejected: number;
  batches: number;
  ticks: number;
  /** times the drain slept in the kernel on an empty ring */
  idleWaits: number;
  lastError?: RecordError;
}

export interface DrainOptions {
  bufferBytes?: number;
  intervalMs?: number;
  maxBatchesPerTick?: number;
  /** false: leave records in the ring this tick (the consumer is saturated;
   * what does not fit in the ring is then counted there as drops) */
  ready?: () => boolean;
  /** The ring could not be read (a native error): the drain stops and says so here. */
  onFailure?: (e: unknown) => void;
  /**
   * Longest sleep in the kernel while the ring is empty; 0 (the default
   * here; the daemon uses 250): never sleep there, tick every `intervalMs`.
   * A caller that sets it must await `settled()` before it closes the ring
   * or the shim.
   */
  idleWaitMs?: number;
  /**
   * After the kernel wait returns because a record arrived: how long to let
   * more records gather before draining (default `intervalMs`; 0: at once).
   * The most an event is delayed by it.
   */
  batchWindowMs?: number;
  /** A tick that drained fewer bytes than this sleeps as if the ring were empty. */
  lowWaterBytes?: number;
}

export class EventDrain implements Disposable {
  readonly stats: DrainStats = {
    records: 0,
    decoded: 0,
    rejected: 0,
    batches: 0,
    ticks: 0,
    bufferGrowths: 0,
    idleWaits: 0,
  };
  #ring: NativeRing;
  #buf: Uint8Array<ArrayBuffer>;
  #dv: DataView;
  #onRecord: (r: KernelRecord) => void;
  #onError: (e: RecordError) => void;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #intervalMs: number;
  #maxBatches: number;
  #ready: () => boolean;
  #onFailure?: (e: unknown) => void;
  #idleWaitMs: number;
  #batchWindowMs: number;
  #lowWater: number;
  #running = false;
  #waiting: Promise<void> | null = null;
  #empty = false;

  constructor(ring: NativeRing, onRecord: (r: KernelRecord) => void, opts: DrainOptions = {}) {
    this.#ring = ring;
    this.#buf = new Uint8Array(opts.bufferBytes ?? 1 << 20);
    this.#dv = new DataView(this.#buf.buffer);
    this.#intervalMs = opts.intervalMs ?? 10;
    this.#maxBatches = opts.maxBatchesPerTick ?? 64;
    this.#ready = opts.ready ?? (() => true);
    this.#onFailure = opts.onFailure;
    this.#idleWaitMs = opts.idleWaitMs ?? 0;
    this.#batchWindowMs = opts.batchWindowMs ?? this.#intervalMs;
    this.#lowWater = opts.lowWaterBytes ?? this.#buf.byteLength / 8;
    this.#onRecord = (r) => {
      this.stats.decoded++;
      onRecord(r);
    };
    this.#onError = (e) => {
      this.stats.rejected++;
      this.stats.lastError = e;
    };
  }

  /** Drain until empty (or the per-tick cap). Returns records seen. */
  drainNow(): number {
    let total = 0;
    let totalBytes = 0;
    let stalled = false; // the consumer is saturated: keep ticking, not sleeping
    this.#empty = false;
    for (let i = 0; i < this.#maxBatches; i++) {
      if (!this.#ready()) {
        stalled = true;
        break;
      }
      let res;
      try {
        res = this.#ring.drain(this.#buf);
      } catch (e) {
        // A record larger than the whole buffer (-EMSGSIZE): grow once
        // (bounded) instead of stalling on it forever.
        if (
          e instanceof NativeCallError && e.errno === EMSGSIZE && this.#buf.byteLength < MAX_BUFFER
        ) {
          this.#buf = new Uint8Array(Math.min(this.#buf.byteLength * 2, MAX_BUFFER));
          this.#dv = new DataView(this.#buf.buffer);
          this.stats.bufferGrowths++;
          continue;
        }
        throw e;
      }
      const { bytes, records } = res;
      if (records === 0) {
        this.#empty = true;
        break;
      }
      this.stats.batches++;
      this.stats.records += records;
      totalBytes += bytes;
      total += forEachRecord(this.#buf, this.#dv, bytes, this.#onRecord, this.#onError);
      if (bytes < this.#buf.byteLength / 2) break; // ring was (nearly) empty
    }
    if (!stalled && totalBytes < this.#lowWater) this.#empty = true; // a trickle: sleep
    return total;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#timer = setTimeout(() => this.#tick(), this.#intervalMs);
  }

  #tick(): void {
    this.#timer = undefined;
    if (!this.#running) return;
    this.stats.ticks++;
    try {
      this.drainNow();
    } catch (e) {
      // never retried blindly: a failing ring is a posture change, not a log spam loop
      this.#fail(e);
      return;
    }
    if (this.#empty && this.#idleWaitMs > 0) {
      this.#sleepInKernel();
    } else {
      this.#timer = setTimeout(() => this.#tick(), this.#intervalMs);
    }
  }

  /** Wait off the main thread until a record is committed (or the idle bound). */
  #sleepInKernel(): void {
    this.stats.idleWaits++;
    this.#waiting = this.#ring.wait(this.#idleWaitMs).then(
      (ready) => {
        this.#waiting = null;
        if (!this.#running) return;
        if (ready && this.#batchWindowMs > 0) {
          this.#timer = setTimeout(() => this.#tick(), this.#batchWindowMs);
        } else this.#tick();
      },
      (e) => {
        this.#waiting = null;
        if (this.#running) this.#fail(e);
      },
    );
  }

  #fail(e: unknown): void {
    this.#running = false;
    if (!this.#onFailure) throw e;
    this.#onFailure(e);
  }

  /** Stop the timer and take what is left. */
  stop(): void {
    this.#running = false;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.drainNow();
  }

  /** Resolves once no wait of this drain is left in native code. */
  async settled(): Promise<void> {
    while (this.#waiting) await this.#waiting;
  }

  [Symbol.dispose](): void {
    this.stop();
  }
}
