/**
 * Event volume controls for block events (docs/telemetry.md, "Event volume
 * controls"): `run --event-sample-rate N` and `run --event-dedup-window D`.
 * Pure: the clock is injected, nothing is written here; the daemon writes
 * what {@link EventVolume.offer}, {@link EventVolume.sweep} and
 * {@link EventVolume.flushAll} return (src/daemon/event_ring.ts). Only event
 * lines are thinned: every counter is fed before an event gets here.
 *
 * Sampling comes first: 1 in N block events of each rule is kept, by a
 * counter per (record kind, hook, action, rule id), the first one included,
 * so a rule that fires once is seen however noisy its neighbours are.
 * Then deduplication: the first kept event of a key is written at once and
 * opens a window; the repeats inside it are folded into a count. The next
 * event of that key after the window carries the count (`folded`, with the
 * first folded event for `folded_since`); when none comes, the sweep at the
 * window's end writes the last folded event with the count of the others,
 * so no count is lost. Every written line is one event, and `folded` says
 * how many others it stands for.
 *
 * Both tables are bounded ({@link VOLUME_MAX_KEYS}): beyond the bound a
 * rule shares one sampling counter, and an event of a new dedup key is
 * written unfolded (and counted as `untracked`), never dropped.
 *
 * @module
 */
import type { KernelRecord } from "./decode.ts";

/** Keys each table holds at most. */
export const VOLUME_MAX_KEYS = 4096;
/** The largest `--event-sample-rate`. */
export const MAX_SAMPLE_RATE = 1_000_000;
/** The longest `--event-dedup-window`, seconds. */
export const MAX_DEDUP_WINDOW_SECONDS = 3600;

export interface VolumeOptions {
  /** keep 1 in N events of each sampling key; 1 (the default): every event */
  sampleRate?: number;
  /** the dedup window, ms; null or absent: no dedup */
  dedupWindowMs?: number | null;
  /** keys per table (default {@link VOLUME_MAX_KEYS}) */
  maxKeys?: number;
  /** a monotonic clock, ms */
  now: () => number;
}

/** What to write: `item`, standing for `folded` more events since `foldedSince`'s. */
export interface VolumeLine<T> {
  item: T;
  /** events of the same key not written, folded into this line */
  folded: number;
  /** the first of them (its time is `folded_since`); null when `folded` is 0 */
  foldedSince: T | null;
}

export interface VolumeStats {
  /** events not written because sampling left them out */
  sampledOut: number;
  /** events written as a count (`folded`) on another line: the sum of `folded` written */
  folded: number;
  /** events written unfolded because the dedup table was full */
  untracked: number;
}

interface Window<T> {
  start: number;
  folded: number;
  first: T | null;
  last: T | null;
}

/** How a record is keyed: for sampling (per rule) and for dedup (what folds). */
export interface VolumeKeys<T> {
  sample(item: T): string;
  dedup(item: T): string;
}

export class EventVolume<T> {
  readonly sampleRate: number;
  readonly dedupWindowMs: number | null;
  readonly stats: VolumeStats = { sampledOut: 0, folded: 0, untracked: 0 };
  readonly #keys: VolumeKeys<T>;
  readonly #max: number;
  readonly #now: () => number;
  readonly #counters = new Map<string, number>();
  #sharedCounter = 0;
  /** insertion order is window start order: re-inserted when a window restarts */
  readonly #windows = new Map<string, Window<T>>();

  constructor(o: VolumeOptions, keys: VolumeKeys<T>) {
    const rate = o.sampleRate ?? 1;
    if (!Number.isSafeInteger(rate) || rate < 1 || rate > MAX_SAMPLE_RATE) {
      throw new RangeError(`sample rate ${rate}: a whole number from 1 to ${MAX_SAMPLE_RATE}`);
    }
    const w = o.dedupWindowMs ?? null;
    if (w !== null && (!Number.isFinite(w) || w <= 0)) {
      throw new RangeError(`dedup window ${w} ms: a positive number`);
    }
    this.sampleRate = rate;
    this.dedupWindowMs = w;
    this.#keys = keys;
    this.#max = o.maxKeys ?? VOLUME_MAX_KEYS;
    this.#now = o.now;
  }

  /** False when every event goes through as it is (rate 1, no window). */
  get active(): boolean {
    return this.sampleRate > 1 || this.dedupWindowMs !== null;
  }

  /** Dedup keys held now (each one a window still open). */
  get pending(): number {
    return this.#windows.size;
  }

  /** One event: the line to write now, or null (sampled out or folded). */
  offer(item: T): VolumeLine<T> | null {
    if (this.sampleRate > 1 && !this.#sampledIn(item)) {
      this.stats.sampledOut++;
      return null;
    }
    const win = this.dedupWindowMs;
    if (win === null) return { item, folded: 0, foldedSince: null };
    const key = this.#keys.dedup(item);
    const now = this.#now();
    const w = this.#windows.get(key);
    if (w !== undefined) {
      if (now - w.start < win) {
        w.folded++;
        w.first ??= item;
        w.last = item;
        return null;
      }
      // the window ended: this event carries its count and opens the next one
      this.#windows.delete(key);
      this.#windows.set(key, { start: now, folded: 0, first: null, last: null });
      this.stats.folded += w.folded;
      return { item, folded: w.folded, foldedSince: w.first };
    }
    if (this.#windows.size >= this.#max) {
      this.stats.untracked++;
      return { item, folded: 0, foldedSince: null };
    }
    this.#windows.set(key, { start: now, folded: 0, first: null, last: null });
    return { item, folded: 0, foldedSince: null };
  }

  /**
   * Windows that ended by now: each closed, and the last event it folded
   * written with the count of the others (the key's next event is then
   * written at once).
   */
  sweep(): VolumeLine<T>[] {
    const win = this.dedupWindowMs;
    if (win === null) return [];
    const now = this.#now();
    const out: VolumeLine<T>[] = [];
    for (const [key, w] of this.#windows) {
      if (now - w.start < win) break; // start order: the rest are younger
      this.#windows.delete(key);
      const line = this.#close(w);
      if (line) out.push(line);
    }
    return out;
  }

  /** Every window closed now, whatever its age (the agent stops). */
  flushAll(): VolumeLine<T>[] {
    const out: VolumeLine<T>[] = [];
    for (const w of this.#windows.values()) {
      const line = this.#close(w);
      if (line) out.push(line);
    }
    this.#windows.clear();
    return out;
  }

  #close(w: Window<T>): VolumeLine<T> | null {
    if (w.folded === 0 || w.last === null) return null;
    const others = w.folded - 1;
    this.stats.folded += others;
    return { item: w.last, folded: others, foldedSince: others > 0 ? w.first : null };
  }

  /** 1 in N per sampling key, the first included. */
  #sampledIn(item: T): boolean {
    const key = this.#keys.sample(item);
    let n = this.#counters.get(key);
    if (n === undefined && this.#counters.size >= this.#max) {
      n = this.#sharedCounter++;
    } else {
      this.#counters.set(key, (n ?? 0) + 1);
      n ??= 0;
    }
    return n % this.sampleRate === 0;
  }
}

/** A block record: the only kind the volume controls apply to. */
export type BlockRecord = Extract<
  KernelRecord,
  { kind: "file_block" | "net_block" | "kernel_block" }
>;

export function isBlockRecord(r: KernelRecord): r is BlockRecord {
  return r.kind === "file_block" || r.kind === "net_block" || r.kind === "kernel_block";
}

/**
 * The keys of block records. Sampling: per rule (kind, hook, action, rule
 * id). Dedup: who (cgroup, uid, comm) did what (kind, hook, action, rule)
 * to which object (file: dev and inode; network: family, address, port,
 * protocol; kernel: target pid and detail). Not the pid: a loop that runs
 * the same command again and again folds (docs/telemetry.md).
 */
export const BLOCK_KEYS: VolumeKeys<BlockRecord> = {
  sample: (r) => `${r.kind}\0${r.hook}\0${r.action}\0${r.ruleId}`,
  dedup: (r) => {
    const who = `${r.kind}\0${r.hook}\0${r.action}\0${r.ruleId}\0${r.cgid}\0${r.uid}\0${r.comm}`;
    switch (r.kind) {
      case "file_block":
        return `${who}\0${r.dev}\0${r.ino}`;
      case "net_block":
        return `${who}\0${r.family}\0${r.addr}\0${r.port}\0${r.proto}`;
      case "kernel_block":
        return `${who}\0${r.targetPid}\0${r.detail}`;
    }
  },
};

/**
 * The fields a written line adds to its event: `sample_rate` while sampling
 * (each line stands for about N events of its rule), `folded` and
 * `folded_since` (the first folded event's time, as `timestamp`) when it
 * carries a count.
 */
export function volumeFields(
  line: VolumeLine<BlockRecord>,
  sampleRate: number,
  wallTime: (ktimeNs: BlockRecord["ktimeNs"]) => string,
): Record<string, unknown> {
  const f: Record<string, unknown> = {};
  if (sampleRate > 1) f.sample_rate = sampleRate;
  if (line.folded > 0) {
    f.folded = line.folded;
    if (line.foldedSince !== null) f.folded_since = wallTime(line.foldedSince.ktimeNs);
  }
  return f;
}
