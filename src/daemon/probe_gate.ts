/**
 * Start order steps 3 and 4 (docs/architecture.md, "The daemon"): the
 * probes and the enforce blockers (the applied policy's needs included),
 * then the gate (./gate.ts, pure). A kernel that cannot even observe, or a
 * fail-closed gate with blockers, refuses here, before anything is
 * attached, with the report written.
 *
 * @module
 */
import type { Shim } from "../native/mod.ts";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import { bpfLsmUsable, capabilityTier, enforceBlockers } from "../posture/blockers.ts";
import type { PolicyNeeds } from "../posture/needs.ts";
import { engineLsmTrial, probeAll, type ProbeReport } from "../posture/probes/mod.ts";
import type { Blocker, RuntimeState } from "../contracts.ts";
import { decideGate, type GateDecision, refusalMessage } from "./gate.ts";
import { btfHasFuncWith, type DaemonOptions, type Faults } from "./options.ts";
import type { AgentStatus } from "./status.ts";

/** A gate decision that starts: its state is known. */
export type StartDecision = GateDecision & { state: RuntimeState };

export interface GateInputs {
  opts: Pick<DaemonOptions, "audit" | "enforceGateMode" | "enforceFallback" | "lsmHook">;
  faults: Faults;
  shim: Shim;
  bytes: Uint8Array<ArrayBuffer>;
  needs: PolicyNeeds;
  breakGlass: boolean;
}

/** Probe, find the blockers, decide; the probe goes to the status. */
export async function probeAndGate(
  i: GateInputs,
  status: AgentStatus,
): Promise<{ blockers: Blocker[]; decision: StartDecision }> {
  const probe = await probeHost(i);
  status.attach({ probe });
  const blockers = enforceBlockers(probe, i.needs);
  if (capabilityTier(probe) === "Disabled") {
    status.rebuild();
    throw new AegisError(
      "CAPABILITY_DISABLED",
      `This kernel lacks what aegisbpf needs even to observe:\n${
        blockers.map((b) => `  - ${b.code}: ${b.message}\n    remedy: ${b.remedy}`).join("\n")
      }`,
    );
  }
  const decision = decideGate({
    audit: i.opts.audit === true,
    breakGlass: i.breakGlass,
    gateMode: i.opts.enforceGateMode,
    signalFallback: i.opts.enforceFallback === "signal",
    lsmUsable: bpfLsmUsable(probe),
    tracepoints: probe.tracepoints.status === "supported",
    blockers,
  });
  if (decision.state === null) {
    status.rebuild(); // never leave an old ENFORCE report behind a refusal
    throw new AegisError("ENFORCE_GATE", refusalMessage(blockers));
  }
  return { blockers, decision: { ...decision, state: decision.state } };
}

/** Every probe (src/posture/probes), with the faults a test injected. */
async function probeHost(i: GateInputs): Promise<ProbeReport> {
  const probe = await probeAll({
    hasBtfFunc: btfHasFuncWith(i.faults, (name) => i.shim.btfHasFunc(name)),
    landlockAbi: () => i.shim.landlockAbi(),
    lsmTrial: engineLsmTrial(i.shim, i.bytes),
    needs: i.needs,
    fileHook: i.opts.lsmHook,
  });
  if (!i.faults.assumeBpfLsm) return probe;
  log("run").warn(literal("injected fault: treating bpf as an active LSM (test only)"));
  return { ...probe, bpf_lsm_active: { status: "supported", value: true } };
}
