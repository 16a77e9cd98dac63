/**
 * `run --event-format`: how event lines are written to the sink
 * (docs/telemetry.md): `json`, the agent's own fields, or `ocsf`, each
 * event mapped to an OCSF class (./ocsf.ts). The /events stream is always
 * `json`.
 *
 * @module
 */
import type { AegisEvent } from "../contracts.ts";
import { type Envelope, type EventEnvelope, eventJson } from "./envelope.ts";
import { toOcsf } from "./ocsf.ts";

export const EVENT_FORMATS = ["json", "ocsf"] as const;
export type EventFormat = typeof EVENT_FORMATS[number];

/**
 * The line writer for `format`: a stamped event → its JSON line, or null
 * when it cannot be written (a value JSON cannot hold; counted by the caller).
 */
export function eventLineWriter(
  format: EventFormat,
  envelope: EventEnvelope,
): (event: AegisEvent & Envelope) => string | null {
  return (event) => {
    try {
      return format === "ocsf"
        ? eventJson(toOcsf(event, envelope.clockOffsetNs ?? 0n))
        : eventJson(event);
    } catch {
      return null;
    }
  };
}
