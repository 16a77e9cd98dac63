/**
 * The daemon's shutdown (docs/architecture.md, "The daemon"): every phase
 * that holds something pushes the step that lets it go; the steps run in
 * reverse order of start, once, whether the start finished or refused.
 *
 * @module
 */
import type { Engine } from "../bpf/engine.ts";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import type { PostureStateMachine } from "../posture/state.ts";

export type CleanupStep = () => Promise<void> | void;

/** The shutdown steps, last pushed first run; a failed step is logged and the rest go on. */
export class Cleanups {
  #steps: CleanupStep[] = [];

  push(step: CleanupStep): void {
    this.#steps.push(step);
  }

  /** Run every step pushed so far (a second call runs only steps pushed since). */
  async run(): Promise<void> {
    for (const f of this.#steps.reverse()) {
      try {
        await f();
      } catch (e) {
        log("run").error(literal(`shutdown step failed: ${e instanceof Error ? e.message : e}`));
      }
    }
    this.#steps.length = 0;
  }
}

/** Resolves on SIGINT or SIGTERM, or when `abort` fires. */
export function waitForStop(abort: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string) => {
      Deno.removeSignalListener("SIGINT", onInt);
      Deno.removeSignalListener("SIGTERM", onTerm);
      abort.removeEventListener("abort", onAbort);
      resolve(why);
    };
    const onInt = () => done("SIGINT");
    const onTerm = () => done("SIGTERM");
    const onAbort = () => done(String(abort.reason ?? "stop"));
    Deno.addSignalListener("SIGINT", onInt);
    Deno.addSignalListener("SIGTERM", onTerm);
    abort.addEventListener("abort", onAbort);
  });
}

/**
 * The agent was asked to stop (`why`): every step runs, the last line says
 * what stays behind; a stop for --strict-degrade is an error (exit 1).
 * `records`: read from the ring before the drain stops.
 */
export async function shutDown(
  why: string,
  records: number,
  engine: Engine,
  machine: PostureStateMachine,
  cleanups: Cleanups,
): Promise<void> {
  await cleanups.run();
  const note = engine.pinRoot
    ? "pinned programs keep running (aegisbpf uninstall removes them)"
    : "programs detached";
  log("run").info(literal(`agent stopping (${why}): ${records} records read; ${note}`), {
    records,
  });
  if (why === "STRICT_DEGRADE") {
    throw new AegisError(
      "STRICT_DEGRADE",
      `--strict-degrade: the agent degraded to ${machine.state}; exiting`,
    );
  }
}
