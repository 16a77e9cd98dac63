/**
 * The daemon's first phase (docs/architecture.md, "The daemon"): where
 * events go. The sink (stdout or a rotating file), the /events hub, and
 * the bus that stamps every event and hands it to both; opened before
 * anything can emit.
 *
 * @module
 */
import { BUILD } from "../assets/mod.ts";
import { CgroupPathResolver } from "../events/cgroup_path.ts";
import type { KernelRecord } from "../events/decode.ts";
import { type Envelope, EventEnvelope } from "../events/envelope.ts";
import { telemetryLineWriter } from "../events/telemetry_line.ts";
import { eventLineWriter } from "../events/format.ts";
import { type EventSink, openSink } from "../events/sink.ts";
import { BLOCK_KEYS, type BlockRecord, EventVolume } from "../events/volume.ts";
import { SseHub } from "../http/sse.ts";
import { literal, log } from "../log.ts";
import { NetBlockCounter } from "../metrics/render.ts";
import type { AegisEvent, EventBus } from "../contracts.ts";
import type { DaemonOptions } from "./options.ts";
import type { Cleanups } from "./shutdown.ts";

/**
 * The event bus: stamps each event with the common fields (timestamp,
 * event_id, host, agent_version: src/events/envelope.ts), then hands it to
 * the sink (stdout or file) and the /events subscribers.
 */
export class DaemonBus implements EventBus {
  emitted = 0;
  readonly envelope: EventEnvelope;
  #targets: EventBus[];
  #fast: FastTelemetry | null;
  constructor(envelope: EventEnvelope, targets: EventBus[], fast: FastTelemetry | null = null) {
    this.envelope = envelope;
    this.#targets = targets;
    this.#fast = fast;
  }
  emit(event: AegisEvent): void {
    this.emitted++;
    const stamped = this.envelope.stamp(event);
    for (const t of this.#targets) t.emit(stamped);
  }
  /**
   * A kernel record's event: its line written straight from the record when
   * nothing needs the event object (src/events/telemetry_line.ts), else
   * `event()` emitted as above. The same line either way.
   */
  emitRecord(r: KernelRecord, event: () => AegisEvent): void {
    const f = this.#fast;
    if (f !== null && f.hub.unwatched) {
      const text = f.line(r);
      if (text !== null) {
        this.emitted++;
        f.write(text);
        f.hub.publishedUnwatched();
        return;
      }
    }
    this.emit(event());
  }
}

/** The telemetry fast path of {@link DaemonBus.emitRecord} (JSON event format only). */
export interface FastTelemetry {
  line: (r: KernelRecord) => string | null;
  write: (text: string) => void;
  hub: Pick<SseHub, "unwatched" | "publishedUnwatched">;
}

/** What the later phases emit into and count from. */
export interface Outputs {
  sink: EventSink;
  hub: SseHub;
  bus: DaemonBus;
  /** network blocks by kind, counted from the records (metrics) */
  netBlocks: NetBlockCounter;
  /** cgroup id → path in events */
  cgroups: CgroupPathResolver;
  /** block event sampling and dedup (`--event-sample-rate`, `--event-dedup-window`) */
  volume: EventVolume<BlockRecord>;
}

/** Open the sink (closed at shutdown), the hub and the bus. */
export function openOutputs(
  opts: Pick<
    DaemonOptions,
    | "log"
    | "logFileMode"
    | "logFileGid"
    | "eventFormat"
    | "eventSampleRate"
    | "eventDedupWindowSeconds"
  >,
  cleanups: Cleanups,
): Outputs {
  const lg = log("run");
  const sink = openSink(opts.log, {
    onError: (e) => lg.error(literal(`event sink: ${e instanceof Error ? e.message : e}`)),
    fileMode: opts.logFileMode,
    fileGid: opts.logFileGid,
    onNotice: (m) => lg.warn(literal(m)),
  });
  cleanups.push(() => sink.close());
  const hub = new SseHub();
  const envelope = new EventEnvelope({
    host: hostName(),
    agentVersion: BUILD.agentVersion,
    clockOffsetNs: null, // read from the native library (shim_open.ts), before any kernel event
  });
  const cgroups = new CgroupPathResolver();
  // exec telemetry goes straight from the record to its line (JSON format, no
  // /events subscriber): about a third of the generic path's cost per exec
  const fast: FastTelemetry | null = (opts.eventFormat ?? "json") === "json"
    ? { line: telemetryLineWriter(envelope, cgroups), write: (t) => sink.write(t), hub }
    : null;
  const bus = new DaemonBus(envelope, [
    new SinkTarget(sink, eventLineWriter(opts.eventFormat ?? "json", envelope)),
    hub,
  ], fast);
  const volume = new EventVolume<BlockRecord>({
    sampleRate: opts.eventSampleRate ?? 1,
    dedupWindowMs: opts.eventDedupWindowSeconds ? opts.eventDedupWindowSeconds * 1000 : null,
    now: () => performance.now(),
  }, BLOCK_KEYS);
  return { sink, hub, bus, netBlocks: new NetBlockCounter(), cgroups, volume };
}

/** The sink as a bus target: one line per event, in the operator's format. */
class SinkTarget implements EventBus {
  #sink: EventSink;
  #line: (ev: AegisEvent & Envelope) => string | null;
  #unwritable = 0;

  constructor(sink: EventSink, line: (ev: AegisEvent & Envelope) => string | null) {
    this.#sink = sink;
    this.#line = line;
  }

  emit(ev: AegisEvent): void {
    const text = this.#line(ev as AegisEvent & Envelope);
    if (text !== null) this.#sink.write(text);
    else if (this.#unwritable++ === 0) {
      log("run").error(literal(`an event could not be written as JSON`));
    }
  }
}

/** The host name events carry (`host`); "unknown" when it cannot be read. */
function hostName(): string {
  try {
    return Deno.hostname() || "unknown";
  } catch {
    return "unknown";
  }
}
