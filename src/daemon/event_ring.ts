/**
 * Start order step 7, the event half (docs/architecture.md, "The event
 * path"): the engine's ring buffer drained into the bus. The proof's own
 * denies become self_test events; every other record is an event. A ring
 * that cannot be opened or read degrades the posture (enforcement is in
 * the kernel and goes on); it does not stop the agent.
 *
 * @module
 */
import { type Engine, MAP_EVENTS } from "../bpf/engine.ts";
import type { KernelRecord } from "../events/decode.ts";
import { EventDrain } from "../events/drain.ts";
import { recordToEvent } from "../events/json.ts";
import type { RulePathCache } from "../events/rule_paths.ts";
import { literal, log } from "../log.ts";
import type { Shim } from "../native/mod.ts";
import type { DaemonPolicy } from "./live.ts";
import type { Outputs } from "./outputs.ts";
import type { Cleanups } from "./shutdown.ts";
import type { AgentStatus } from "./status.ts";

export interface RingProblem {
  reason: "RINGBUF_CREATE_FAILED" | "RINGBUF_POLL_FAILED";
  detail: string;
}

export interface EventRingInputs {
  shim: Shim;
  engine: Engine;
  outputs: Outputs;
  /** the rule's path for a file block the kernel gave none (path_source "rule") */
  rulePaths: RulePathCache;
  /** counts blocks by rule and cgroup (stats --detailed) */
  policy: Pick<DaemonPolicy, "observeBlock">;
  /** the proofs (own records) and the state machine (a failed read degrades) */
  status: AgentStatus;
}

/** The ring and its drain; nothing is read before start(). */
export class EventRing {
  #drain: EventDrain | null = null;
  #broken = false;
  /** the ring could not be opened: no events */
  readonly problem: RingProblem | null = null;

  constructor(i: EventRingInputs, cleanups: Cleanups) {
    try {
      const ring = i.shim.openRing(i.engine.obj.map(MAP_EVENTS).fd);
      cleanups.push(() => ring.close());
      const drain = new EventDrain(ring, recordSink(i), {
        ready: () => !i.outputs.sink.saturated,
        // an empty ring sleeps in the kernel (epoll) instead of a 10 ms tick: an idle
        // agent costs ~0.5 % of a core instead of ~3.4 % (docs/telemetry.md)
        idleWaitMs: 250,
        onFailure: (e) => {
          const detail = `reading the event ring failed: ${e instanceof Error ? e.message : e}`;
          log("run").error(literal(detail));
          this.#broken = true;
          i.status.machine?.transition("DEGRADED", "RINGBUF_POLL_FAILED", detail);
        },
      });
      this.#drain = drain;
      cleanups.push(async () => {
        drain.stop();
        // a wait still in native code must return before the ring and the shim close
        await drain.settled();
      });
    } catch (e) {
      this.problem = {
        reason: "RINGBUF_CREATE_FAILED",
        detail: `cannot open the event ring: ${e instanceof Error ? e.message : e}; no events`,
      };
      log("run").error(literal(this.problem.detail));
      this.#broken = true;
    }
  }

  /** Until a restart: the runtime checks must not "recover" from it. */
  get broken(): boolean {
    return this.#broken;
  }

  /** Records read so far. */
  get records(): number {
    return this.#drain?.stats.records ?? 0;
  }

  start(): void {
    this.#drain?.start();
  }
}

/** Each record onto the bus. */
function recordSink(i: EventRingInputs): (r: KernelRecord) => void {
  const { bus, netBlocks, cgroups: resolver } = i.outputs;
  return (r) => {
    if (i.status.proofs?.isOwnRecord(r)) {
      // the proof's own deny (a canary, or a user rule verified from the canary
      // cgroup; counted by the prover): its own event type, marked, never a
      // user-visible block
      bus.emit({ ...recordToEvent(r, resolver, i.rulePaths), type: "self_test", self_test: true });
      return;
    }
    netBlocks.observe(r);
    i.policy.observeBlock(r);
    bus.emitRecord(r, () => recordToEvent(r, resolver, i.rulePaths));
  };
}
