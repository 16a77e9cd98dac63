/**
 * The daemon's first phase (docs/architecture.md, "The daemon"): where
 * events go. The sink (stdout or a rotating file), the /events hub, and
 * the bus that stamps every event and hands it to both; opened before
 * anything can emit.
 *
 * @module
 */
import { BUILD } from "../assets/mod.ts";
import { type Envelope, EventEnvelope } from "../events/envelope.ts";
import { eventLineWriter } from "../events/format.ts";
import { type EventSink, openSink } from "../events/sink.ts";
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
  constructor(envelope: EventEnvelope, targets: EventBus[]) {
    this.envelope = envelope;
    this.#targets = targets;
  }
  emit(event: AegisEvent): void {
    this.emitted++;
    const stamped = this.envelope.stamp(event);
    for (const t of this.#targets) t.emit(stamped);
  }
}

/** What the later phases emit into and count from. */
export interface Outputs {
  sink: EventSink;
  hub: SseHub;
  bus: DaemonBus;
  /** network blocks by kind, counted from the records (metrics) */
  netBlocks: NetBlockCounter;
}

/** Open the sink (closed at shutdown), the hub and the bus. */
export function openOutputs(
  opts: Pick<DaemonOptions, "log" | "logFileMode" | "logFileGid" | "eventFormat">,
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
  const bus = new DaemonBus(envelope, [
    new SinkTarget(sink, eventLineWriter(opts.eventFormat ?? "json", envelope)),
    hub,
  ]);
  return { sink, hub, bus, netBlocks: new NetBlockCounter() };
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
