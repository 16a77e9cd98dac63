/**
 * SIGHUP (logrotate's postrotate, `systemctl reload`): reopen the event
 * file, and apply `run --policy FILE` again once the start has applied it
 * (docs/architecture.md, "The daemon"). Deno's default for the signal would
 * end the agent, so the listener goes in right after the sink opens.
 *
 * @module
 */
import type { EventSink } from "../events/sink.ts";
import { literal, log } from "../log.ts";
import type { Cleanups } from "./shutdown.ts";

export class SighupHandler {
  #sink: EventSink;
  #runPolicy: string | undefined;
  #reapply: (() => Promise<void>) | null = null;

  constructor(sink: EventSink, runPolicy: string | undefined) {
    this.#sink = sink;
    this.#runPolicy = runPolicy;
  }

  /** The start applied `--policy` (policy_phase.ts): from now on SIGHUP applies it again. */
  reapplyWith(reapply: () => Promise<void>): void {
    this.#reapply = reapply;
  }

  onSignal(): void {
    const lg = log("run");
    const spec = this.#sink.spec;
    lg.info(
      literal(
        `SIGHUP: ${
          spec === "stdout"
            ? "events go to stdout, nothing to reopen"
            : `reopening ${spec.slice(5)}`
        }`,
      ),
    );
    this.#sink.reopen();
    if (!this.#runPolicy) return;
    if (this.#reapply) void this.#reapply();
    else {
      lg.warn(
        literal(`SIGHUP while starting: --policy ${this.#runPolicy} is applied as read at start`),
      );
    }
  }
}

/** Listen for SIGHUP until shutdown. */
export function installSighup(
  sink: EventSink,
  runPolicy: string | undefined,
  cleanups: Cleanups,
): SighupHandler {
  const handler = new SighupHandler(sink, runPolicy);
  const onHup = () => handler.onSignal();
  Deno.addSignalListener("SIGHUP", onHup);
  cleanups.push(() => Deno.removeSignalListener("SIGHUP", onHup));
  return handler;
}
