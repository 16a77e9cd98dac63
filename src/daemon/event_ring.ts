/**
 * Start order step 7, the event half (docs/architecture.md, "The event
 * path"): the engine's ring buffer drained into the bus. The proof's own
 * denies become self_test events; every other record is an event, block
 * events thinned by the volume controls after every counter saw them
 * (src/events/volume.ts; docs/telemetry.md, "Event volume controls"). A ring
 * that cannot be opened or read degrades the posture (enforcement is in
 * the kernel and goes on); it does not stop the agent.
 *
 * @module
 */
import { type Engine, MAP_EVENTS } from "../bpf/engine.ts";
import type { KernelRecord } from "../events/decode.ts";
import { EventDrain } from "../events/drain.ts";
import { type CgroupResolver, recordToEvent, type RulePaths } from "../events/json.ts";
import type { RulePathCache } from "../events/rule_paths.ts";
import {
  type BlockRecord,
  isBlockRecord,
  volumeFields,
  type VolumeLine,
} from "../events/volume.ts";
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

/** How often windows that ended are looked for (a folded count is written at most this late). */
const SWEEP_MS = 250;

/** The ring and its drain; nothing is read before start(). */
export class EventRing {
  #drain: EventDrain | null = null;
  #broken = false;
  #sweep: (() => void) | null = null;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
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
      const { volume } = i.outputs;
      const write = volumeWriter(i.outputs, i.rulePaths);
      if (volume.dedupWindowMs !== null) {
        this.#sweep = () => volume.sweep().forEach(write);
      }
      cleanups.push(async () => {
        clearInterval(this.#sweepTimer);
        drain.stop();
        // a wait still in native code must return before the ring and the shim close
        await drain.settled();
        // the counts still folded are written before the sink closes: none is lost
        volume.flushAll().forEach(write);
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
    if (this.#drain && this.#sweep && this.#sweepTimer === undefined) {
      this.#sweepTimer = setInterval(this.#sweep, SWEEP_MS);
    }
  }
}

/** What {@link recordSink} reads and feeds. */
export interface SinkInputs {
  outputs: Pick<Outputs, "bus" | "netBlocks" | "volume"> & { cgroups: CgroupResolver };
  rulePaths: RulePaths;
  policy: Pick<DaemonPolicy, "observeBlock">;
  status: { readonly proofs: Pick<NonNullable<AgentStatus["proofs"]>, "isOwnRecord"> | null };
}

/**
 * Each record onto the bus. Every counter sees every record first; only
 * then are block events thinned (sampled out or folded) when the volume
 * controls are on.
 */
export function recordSink(i: SinkInputs): (r: KernelRecord) => void {
  const { bus, netBlocks, cgroups: resolver, volume } = i.outputs;
  const write = volumeWriter(i.outputs, i.rulePaths);
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
    if (volume.active && isBlockRecord(r)) {
      const line = volume.offer(r);
      if (line !== null) write(line);
      return;
    }
    bus.emitRecord(r, () => recordToEvent(r, resolver, i.rulePaths));
  };
}

/** A line the volume controls let through: the event with its `sample_rate`, `folded`. */
function volumeWriter(
  o: SinkInputs["outputs"],
  rulePaths: RulePaths,
): (line: VolumeLine<BlockRecord>) => void {
  const wallTime = (k: BlockRecord["ktimeNs"]) => o.bus.envelope.wallTime(k);
  return (line) =>
    o.bus.emit({
      ...recordToEvent(line.item, o.cgroups, rulePaths),
      ...volumeFields(line, o.volume.sampleRate, wallTime),
    });
}
