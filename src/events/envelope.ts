/**
 * The fields every event line carries besides its own (docs/telemetry.md,
 * "Fields every event has"), and the one serializer of event lines.
 *
 * - `timestamp`: wall-clock time, RFC 3339 UTC with nine fraction digits.
 *   A kernel event's comes from its `ktime_ns` (CLOCK_MONOTONIC, the clock
 *   of bpf_ktime_get_ns()) plus the realtime−monotonic offset read once at
 *   start, so it is the time of the event, to the ns, not of its reading.
 *   An event of the agent's own (state_change, control_change, …) takes the
 *   clock when it is emitted.
 * - `event_id`: `<16 hex digits>-<n>`: a random prefix drawn at each agent
 *   start and a counter from 1, unique without coordination between agents
 *   or restarts.
 * - `host`: the host name, `agent_version`: this build's version.
 *
 * u64 values are JSON integers with their exact digits: an event holds them
 * as numbers while exact and as bigints beyond 2^53, and {@link eventJson}
 * writes a bigint as its raw digits (JSON.rawJSON), never as a string and
 * never rounded.
 *
 * @module
 */
import type { AegisEvent } from "../contracts.ts";
import { exactJson } from "../util/exact_json.ts";

/** What an event has once stamped. */
export interface Envelope {
  timestamp: string;
  event_id: string;
  host: string;
  agent_version: string;
}

export interface EnvelopeOptions {
  host: string;
  agentVersion: string;
  /**
   * CLOCK_REALTIME − CLOCK_MONOTONIC, ns (Shim.clockOffsetNs()); null until
   * known (set it with {@link EventEnvelope.clockOffsetNs} before kernel
   * events flow: until then their `timestamp` is the time of stamping)
   */
  clockOffsetNs: bigint | null;
  /** wall clock now, ms since the epoch (tests) */
  now?: () => number;
  /** the event id prefix (tests); 16 random hex digits when absent */
  idPrefix?: string;
}

const NS_PER_S = 1_000_000_000n;

/** ns since the epoch → RFC 3339 UTC with nine fraction digits. */
export function rfc3339FromNs(epochNs: bigint): string {
  if (epochNs < 0n) epochNs = 0n;
  const s = epochNs / NS_PER_S;
  const frac = String(epochNs % NS_PER_S).padStart(9, "0");
  const iso = new Date(Number(s) * 1000).toISOString(); // …T12:34:56.000Z
  return `${iso.slice(0, 19)}.${frac}Z`;
}

function randomPrefix(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Stamps events with the common fields; one per agent. */
export class EventEnvelope {
  readonly host: string;
  readonly agentVersion: string;
  /** realtime − monotonic, ns: set once, when the native library is open */
  clockOffsetNs: bigint | null;
  readonly idPrefix: string;
  #n = 0;
  #now: () => number;

  constructor(o: EnvelopeOptions) {
    if (o.idPrefix !== undefined && !/^[0-9a-f]{1,32}$/.test(o.idPrefix)) {
      throw new RangeError(`event id prefix "${o.idPrefix}": 1 to 32 lower-case hex digits`);
    }
    this.host = o.host;
    this.agentVersion = o.agentVersion;
    this.clockOffsetNs = o.clockOffsetNs;
    this.idPrefix = o.idPrefix ?? randomPrefix();
    this.#now = o.now ?? Date.now;
  }

  /** Wall-clock time of a kernel time (ns since boot, CLOCK_MONOTONIC). */
  wallTime(ktimeNs: number | bigint): string {
    const off = this.clockOffsetNs;
    if (off === null) return this.#nowText();
    if (typeof ktimeNs === "bigint") return rfc3339FromNs(ktimeNs + off);
    // the hot path (every kernel event): number arithmetic, exact below 2^53, and
    // the date text of a second computed once for all events in that second
    if (this.#split?.off !== off) {
      const sec = off / NS_PER_S - (off % NS_PER_S < 0n ? 1n : 0n);
      this.#split = { off, sec: Number(sec), ns: Number(off - sec * NS_PER_S) };
    }
    const kSec = Math.floor(ktimeNs / 1e9);
    let ns = ktimeNs - kSec * 1e9 + this.#split.ns;
    let sec = kSec + this.#split.sec;
    if (ns >= 1e9) {
      ns -= 1e9;
      sec++;
    }
    if (sec < 0) return rfc3339FromNs(0n);
    if (sec !== this.#lastSec) {
      this.#lastSec = sec;
      this.#lastPrefix = new Date(sec * 1000).toISOString().slice(0, 19);
    }
    return `${this.#lastPrefix}.${String(ns).padStart(9, "0")}Z`;
  }

  /** The next event's `event_id` (each call takes a number). */
  nextId(): string {
    return `${this.idPrefix}-${++this.#n}`;
  }

  /** the clock offset split into whole seconds and ns (0..1e9) */
  #split: { off: bigint; sec: number; ns: number } | null = null;
  #lastSec = -1;
  #lastPrefix = "";

  #nowText(): string {
    return rfc3339FromNs(BigInt(Math.round(this.#now())) * 1_000_000n);
  }

  /**
   * `event` with the common fields first (`timestamp`, `type`, `event_id`,
   * `host`, `agent_version`), then its own. Its own fields of those names
   * are replaced. Never throws.
   */
  stamp(event: AegisEvent): AegisEvent & Envelope {
    const k = event.ktime_ns;
    const timestamp = typeof k === "number" || typeof k === "bigint"
      ? this.wallTime(k)
      : this.#nowText();
    return {
      timestamp,
      type: event.type,
      event_id: this.nextId(),
      host: this.host,
      agent_version: this.agentVersion,
      ...withoutEnvelope(event),
    } as AegisEvent & Envelope;
  }
}

const ENVELOPE_KEYS = new Set(["timestamp", "event_id", "host", "agent_version"]);

function withoutEnvelope(event: AegisEvent): Record<string, unknown> {
  let clash = false;
  for (const k of ENVELOPE_KEYS) if (Object.hasOwn(event, k)) clash = true;
  if (!clash) return event;
  // fromEntries defines properties: an own "__proto__" key stays a plain key
  return Object.fromEntries(Object.entries(event).filter(([k]) => !ENVELOPE_KEYS.has(k)));
}

/** One event as a JSON line (no newline): bigints as exact integers. Throws on a cycle. */
export const eventJson: (event: unknown) => string = exactJson;
