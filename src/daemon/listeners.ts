/**
 * Start order step 1 (docs/architecture.md, "The daemon"): the listeners
 * first, so a busy port or another running agent refuses the start before
 * anything is attached. The HTTP API, the opt-in probe and metrics
 * listeners, then the policy the control socket edits, then the socket;
 * every one answers 503 STARTING until the posture is known.
 *
 * @module
 */
import type { Hono } from "hono";
import { createControlApp } from "../control/app.ts";
import type { EmergencyControl } from "../control/emergency.ts";
import { startControlServer } from "../control/server.ts";
import type { CgroupResolver } from "../events/json.ts";
import { RulePathCache } from "../events/rule_paths.ts";
import { createApp } from "../http/app.ts";
import {
  createMetricsApp,
  createProbeApp,
  Liveness,
  METRICS_LISTEN_FLAG,
  PROBE_LISTEN_FLAG,
} from "../http/probe.ts";
import { parseListen, startHttpServer } from "../http/serve.ts";
import type { SseHub } from "../http/sse.ts";
import { literal, log } from "../log.ts";
import type { EventBus } from "../contracts.ts";
import { DaemonPolicy } from "./live.ts";
import type { DaemonOptions } from "./options.ts";
import type { Cleanups } from "./shutdown.ts";
import { appliedFacts } from "./stored.ts";
import type { AgentStatus } from "./status.ts";
import type { Views } from "./views.ts";

type ListenOptions = Pick<
  DaemonOptions,
  "httpListen" | "httpAllowRemote" | "probeListen" | "metricsListen"
>;

/**
 * The HTTP API and the pod-network listeners; returns the read-only app
 * (the control socket answers it too) and the liveness the checks beat.
 */
export async function startListeners(
  opts: ListenOptions,
  views: Views,
  hub: SseHub,
  cleanups: Cleanups,
): Promise<{ app: Hono; liveness: Liveness }> {
  const app = createApp({ ...views, events: hub });
  const listen = parseListen(opts.httpListen);
  if (listen) {
    const srv = await startHttpServer(app, listen, {
      allowRemote: opts.httpAllowRemote === true,
      // open /events streams would hold a graceful shutdown: end them first
      beforeClose: () => hub.close(),
    });
    cleanups.push(() => srv.close());
    log("run").info(literal(`HTTP API on ${srv.addr.hostname}:${srv.addr.port}`), {
      http: srv.addr,
    });
  }
  const liveness = new Liveness();
  await startNarrowListeners(opts, views, liveness, cleanups);
  return { app, liveness };
}

/** The pod-network listeners (opt-in): answers without details (docs/http.md). */
async function startNarrowListeners(
  opts: ListenOptions,
  views: Views,
  liveness: Liveness,
  cleanups: Cleanups,
): Promise<void> {
  const narrow = [
    {
      flag: PROBE_LISTEN_FLAG,
      value: opts.probeListen,
      label: "probe listener",
      app: () =>
        createProbeApp({
          ready: () => views.health(true).status === 200,
          alive: () => liveness.alive(),
        }),
    },
    {
      flag: METRICS_LISTEN_FLAG,
      value: opts.metricsListen,
      label: "metrics listener",
      app: () => createMetricsApp(() => views.metrics(false)),
    },
  ];
  for (const n of narrow) {
    const at = n.value === undefined ? null : parseListen(n.value, n.flag);
    if (!at) continue;
    const srv = await startHttpServer(n.app(), at, {
      allowRemote: true, // meant for the pod network; they answer no details
      flag: n.flag,
      label: n.label,
      limits: { maxConnections: 64, maxBodyBytes: 1024 },
    });
    cleanups.push(() => srv.close());
  }
}

/**
 * The policy the control socket edits (src/daemon/live.ts), bound to the
 * engine later; and the rule paths block events name when the kernel
 * gave none. `ownDenies`: the proof's denies so far (a canary apply does not
 * count them); `cgroups`: the event lines' cgroup resolver, shared (one cache
 * of /sys/fs/cgroup per agent).
 */
export function createPolicy(
  stateDir: string,
  bus: EventBus,
  status: AgentStatus,
  cleanups: Cleanups,
  ownDenies: () => number,
  cgroups: CgroupResolver,
): { policy: DaemonPolicy; rulePaths: RulePathCache } {
  const rulePaths = new RulePathCache(() => [
    ...policy.fileRuleTargets(),
    ...policy.contentTargets(),
  ]);
  const policy: DaemonPolicy = new DaemonPolicy({
    stateDir,
    bus,
    // the proof's own denies are not the policy's: a canary watch leaves them out
    ownDenies,
    cgroups,
    contentScanOn: () => status.execIdentity()?.source === "scan",
    onContentScan: (summary) => status.contentScanned(summary),
    onChange: () => status.rebuild(),
    // the report says what the maps hold: the policy just switched in
    onApplied: (r) => {
      const { needs, ...facts } = appliedFacts(stateDir);
      status.policyApplied({
        ...facts,
        applied: true,
        sha256: r.body_sha256 ?? r.sha256,
        version: r.version,
        unresolved: [],
      }, needs);
      status.clearBlocker("POLICY_RESTORE_FAILED", "a good policy is applied");
    },
    onRulesChanged: () => {
      rulePaths.invalidate();
      // new or changed rules: verify them all, in the next 1 s tick
      status.proofs?.verifier.invalidate();
      status.proofs?.prover.expedite();
    },
    // an apply or block add replies after one round has tried the new rules
    verifyNow: () => status.proofs?.verifyNow() ?? Promise.resolve(null),
  });
  cleanups.push(() => policy.close());
  status.attach({ policy });
  return { policy, rulePaths };
}

/** The root-only control socket: the read-only app, emergency disable, the policy's routes. */
export async function startControlSocket(
  socketPath: string,
  readOnly: Hono,
  policy: DaemonPolicy,
  status: AgentStatus,
  cleanups: Cleanups,
): Promise<void> {
  const control = await startControlServer(
    createControlApp({
      // 503 STARTING until the engine runs (engine_start.ts)
      emergency: new Proxy({} as EmergencyControl, {
        get: (_t, p) => {
          const e = status.emergencyOrStarting();
          const v = Reflect.get(e, p, e);
          return typeof v === "function" ? v.bind(e) : v;
        },
      }),
      readOnly,
      mounts: policy.mounts(),
    }),
    socketPath,
  );
  cleanups.push(() => control.close());
}
