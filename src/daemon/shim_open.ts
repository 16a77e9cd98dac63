/**
 * The native library and the BPF object (docs/architecture.md, "The
 * daemon"), before the listeners: the embedded shim loaded and
 * hash-checked, the kernel clock read for event timestamps, the service
 * manager's notify socket, the file limit raised, the object's bytes
 * checked.
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../assets/mod.ts";
import { raiseFdLimitAtStart } from "../control/server.ts";
import type { EventEnvelope } from "../events/envelope.ts";
import { literal, log } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import { type ObjectFacts, objectFacts as objectFactsOf } from "../posture/agent_facts.ts";
import { CHECK_INTERVAL_MS } from "./monitor.ts";
import { type ServiceNotifier, serviceNotifier } from "./notify.ts";
import type { Cleanups } from "./shutdown.ts";

export interface Native {
  shim: Shim;
  /** the BPF object, hash-checked */
  bytes: Uint8Array<ArrayBuffer>;
  /** what health reports of the object */
  objectFacts: ObjectFacts;
  /** systemd Type=notify; null when no service manager asked */
  notifier: ServiceNotifier | null;
}

/** Open the shim (closed at shutdown, after everything that uses it) and read the object. */
export async function openNative(envelope: EventEnvelope, cleanups: Cleanups): Promise<Native> {
  const shim = await openEmbeddedShim();
  // closed by the cleanups, after everything that uses it (they run in reverse)
  cleanups.push(() => shim.close());
  // kernel times (ktime_ns) → wall-clock `timestamp`: read once, before any record
  envelope.clockOffsetNs = shim.clockOffsetNs();
  const notifier = notifierFor(shim);
  raiseFdLimitAtStart(shim);
  const bytes = await bpfObjectBytes();
  // hash-checked by bpfObjectBytes (it throws on a mismatch): what health reports
  const objectFacts = objectFactsOf({ found: true, hashVerified: true, bytes });
  return { shim, bytes, objectFacts, notifier };
}

/** systemd Type=notify (null when no service manager asked); warns of a too short watchdog. */
function notifierFor(shim: Shim): ServiceNotifier | null {
  const lg = log("run");
  const notifier = serviceNotifier(
    Deno.env.toObject(),
    Deno.pid,
    (socket, msg) => shim.sdNotify(socket, msg),
    (e) =>
      lg.warn(
        literal(
          `cannot notify the service manager (NOTIFY_SOCKET): ${
            e instanceof Error ? e.message : e
          }; no more notifications are sent`,
        ),
      ),
  );
  const watchdogMs = notifier?.watchdogMs ?? null;
  if (watchdogMs !== null && watchdogMs < 2 * CHECK_INTERVAL_MS) {
    lg.warn(
      literal(
        `WatchdogSec is ${watchdogMs} ms: the agent pings every ` +
          `${CHECK_INTERVAL_MS} ms from its runtime checks; use at least 3s`,
      ),
    );
  }
  return notifier;
}
