/**
 * The daemon's read-only answers (/health, /metrics, /state; the probe and
 * metrics listeners), read from the status while the start goes on: 503
 * STARTING until the first report.
 *
 * @module
 */
import type { MapName } from "../bpf/abi_gen.ts";
import type { HttpDeps } from "../http/app.ts";
import type { SseHub } from "../http/sse.ts";
import { PROC_SELF } from "../metrics/process.ts";
import { agentBuildInfo, renderMetrics } from "../metrics/render.ts";
import { type ObjectFacts, pinFacts } from "../posture/agent_facts.ts";
import { evaluateHealth } from "../posture/health.ts";
import type { SelfTestCounter } from "../proof/prover.ts";
import type { AegisPaths } from "../contracts.ts";
import type { Outputs } from "./outputs.ts";
import type { AgentStatus } from "./status.ts";

export interface ViewSources {
  status: AgentStatus;
  outputs: Outputs;
  paths: Pick<AegisPaths, "pinRoot" | "perfSlo">;
  objectFacts: ObjectFacts;
  selfTest: SelfTestCounter;
}

export type Views = Pick<HttpDeps, "health" | "capabilities" | "state" | "metrics">;

/** The answers, each read when asked. */
export function daemonViews(s: ViewSources): Views {
  const status = s.status;
  return {
    health: (requireEnforce) => health(s, requireEnforce),
    capabilities: () => status.report,
    state: () => {
      const sm = status.machine;
      const engine = status.engine;
      return {
        runtime_state: sm?.state ?? null,
        enforce_requested: status.init.enforceRequested,
        transitions: sm?.history ?? [],
        state_transitions: sm?.summary() ?? null,
        emergency: status.emergency?.status() ?? null,
        pins: engine?.pinRoot ?? null,
        attached: engine?.attachedSections() ?? [],
        unresolved_paths: status.policy?.unresolved() ?? [],
      };
    },
    metrics: (detailed) => metrics(s, detailed),
  };
}

function health(
  s: ViewSources,
  requireEnforce: boolean,
): { status: 200 | 503; body: unknown } {
  const report = s.status.report;
  if (!report) {
    return {
      status: 503 as const,
      body: { ok: false, error: "agent starting", code: "STARTING" },
    };
  }
  const h = evaluateHealth(
    {
      report,
      emergencyActive: s.status.emergencyActive(),
      daemonRunning: true,
      agent: { object: s.objectFacts, pins: pinFacts(s.paths.pinRoot) }, // pinned or not
    },
    requireEnforce,
  );
  return { status: h.status, body: h.body };
}

function metrics(s: ViewSources, detailed: boolean): Promise<string> {
  const { status, outputs, selfTest } = s;
  const report = status.report;
  const proofs = status.proofs;
  return renderMetrics({
    map: (name: MapName) => status.engine ? status.engine.obj.map(name) : null,
    runtimeState: status.machine?.state ?? null,
    enforceCapable: report?.enforce_capable ?? null,
    blockers: report?.enforce_blockers ?? null,
    emergency: status.emergency?.counters() ?? null,
    events: {
      emitted: outputs.bus.emitted,
      sinkDropped: outputs.sink.stats.dropped,
      sinkWritten: outputs.sink.stats.written,
      volume: outputs.volume.stats,
    },
    netBlocks: outputs.netBlocks.counts,
    sse: { droppedClients: sseDropped(outputs.hub) },
    unresolvedPaths: status.policy?.unresolvedCount() ?? 0,
    perfSloPath: s.paths.perfSlo,
    process: PROC_SELF,
    build: agentBuildInfo(),
    selfTest: {
      byHook: selfTest.byHook,
      liveCanaryEntries: proofs?.liveCanaryEntries ?? 0,
      pending: selfTest.pending,
    },
    proof: proofs
      ? {
        results: proofs.prover.results,
        now: Math.floor(Date.now() / 1000),
        unenforcedRules: proofs.verifier.unenforced.length,
        verifiedRules: proofs.verifier.lastRound?.denied,
      }
      : null,
  }, { detailed });
}

/** /events subscribers the hub cut off (every reason). */
function sseDropped(hub: SseHub): number {
  return Object.values(hub.stats().dropped_clients).reduce((a, b) => a + b, 0);
}
