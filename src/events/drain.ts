/**
 * The ring-buffer drain: one synchronous FFI call copies a batch of
 * records into a buffer this class owns, then the batch is decoded in
 * TypeScript. No per-event FFI call, no callback from C.
 *
 * A timer drives it (every `intervalMs`, default 10 ms: NATIVE.md measured
 * ≈ 1 M events/s at ≈ 2.5 % CPU this way). Each tick drains until the ring
 * is empty or `maxBatchesPerTick` batches were taken, so a burst cannot
 * starve the event loop (HTTP keeps answering).
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
}

export class EventDrain implements Disposable {
  readonly stats: DrainStats = {
    records: 0,
    decoded: 0,
    rejected: 0,
    batches: 0,
    ticks: 0,
    bufferGrowths: 0,
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

  constructor(ring: NativeRing, onRecord: (r: KernelRecord) => void, opts: DrainOptions = {}) {
    this.#ring = ring;
    this.#buf = new Uint8Array(opts.bufferBytes ?? 1 << 20);
    this.#dv = new DataView(this.#buf.buffer);
    this.#intervalMs = opts.intervalMs ?? 10;
    this.#maxBatches = opts.maxBatchesPerTick ?? 64;
    this.#ready = opts.ready ?? (() => true);
    this.#onFailure = opts.onFailure;
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
    for (let i = 0; i < this.#maxBatches; i++) {
      if (!this.#ready()) break;
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
      if (records === 0) break;
      this.stats.batches++;
      this.stats.records += records;
      total += forEachRecord(this.#buf, this.#dv, bytes, this.#onRecord, this.#onError);
      if (bytes < this.#buf.byteLength / 2) break; // ring was (nearly) empty
    }
    return total;
  }

  start(): void {
    if (this.#timer !== undefined) return;
    const tick = () => {
      this.stats.ticks++;
      try {
        this.drainNow();
      } catch (e) {
        // never retried blindly: a failing ring is a posture change, not a log spam loop
        this.#timer = undefined;
        if (!this.#onFailure) throw e;
        this.#onFailure(e);
        return;
      }
      this.#timer = setTimeout(tick, this.#intervalMs);
    };
    this.#timer = setTimeout(tick, this.#intervalMs);
  }

  /** Stop the timer and take what is left. */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.drainNow();
  }

  [Symbol.dispose](): void {
    this.stop();
  }
}
