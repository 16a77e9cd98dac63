/**
 * What the daemon knows of itself, for the report and the answers
 * (docs/architecture.md, "The daemon"). The listeners are bound first and
 * read it while the start goes on: every later phase hands over what it
 * made (attach), once; the report (`capabilities.json`) is rebuilt from
 * it at the moments the start and the runtime checks call for.
 *
 * @module
 */
import { type ExecIdentity, execIdentity } from "../posture/exec_identity.ts";
import type { ContentScanSummary } from "../posture/report.ts";
import type { Engine } from "../bpf/engine.ts";
import type { EmergencyControl } from "../control/emergency.ts";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import type { PolicyNeeds } from "../posture/needs.ts";
import type { ProbeReport } from "../posture/probes/mod.ts";
import {
  buildReport,
  type CapabilitiesReport,
  NO_POLICY,
  type PolicyStatus,
  type SelfProtectionReport,
  writeReport,
} from "../posture/report.ts";
import type { PostureStateMachine } from "../posture/state.ts";
import type { Blocker, BlockerCode } from "../contracts.ts";
import type { DaemonPolicy } from "./live.ts";
import type { Proofs } from "./proofs.ts";

/** What the phases hand over, in start order. */
export interface StatusParts {
  /** listeners.ts: the policy the control socket edits */
  policy: DaemonPolicy;
  /** probe_gate.ts */
  probe: ProbeReport;
  /** engine_start.ts */
  engine: Engine;
  emergency: EmergencyControl;
  /** posture.ts: the state machine, then the proofs (only when enforcing) */
  machine: PostureStateMachine;
  proofs: Proofs;
  /** self_protect.ts: run --self-protect */
  selfProtection: SelfProtectionReport;
}

export interface StatusInit {
  /** where the report is written (AegisPaths.capabilities) */
  capabilitiesPath: string;
  /** what the applied policy needs (stored.ts) */
  needs: PolicyNeeds;
  /** what the report says is applied, until an apply or a failed restore says otherwise */
  policyStatus: PolicyStatus;
  enforceRequested: boolean;
  strictMode: boolean;
  /** run --proof-interval, in seconds */
  proofInterval: number;
}

export class AgentStatus {
  readonly init: StatusInit;
  #parts: Partial<StatusParts> = {};
  #contentScan: ContentScanSummary | null = null;
  #report: CapabilitiesReport | null = null;
  #policyStatus: PolicyStatus;
  #needs: PolicyNeeds;
  /** blockers found after the probes (engine, policy), in the report until cleared */
  #blockers: Blocker[] = [];

  constructor(init: StatusInit) {
    this.init = init;
    this.#policyStatus = init.policyStatus;
    this.#needs = init.needs;
  }

  /** A phase hands over what it made. */
  attach(parts: Partial<StatusParts>): void {
    Object.assign(this.#parts, parts);
  }

  /** null until the probes ran */
  get report(): CapabilitiesReport | null {
    return this.#report;
  }
  get policy(): DaemonPolicy | null {
    return this.#parts.policy ?? null;
  }
  get engine(): Engine | null {
    return this.#parts.engine ?? null;
  }
  get emergency(): EmergencyControl | null {
    return this.#parts.emergency ?? null;
  }
  get machine(): PostureStateMachine | null {
    return this.#parts.machine ?? null;
  }
  get proofs(): Proofs | null {
    return this.#parts.proofs ?? null;
  }

  emergencyActive(): boolean {
    return this.#parts.emergency?.status().active ?? false;
  }

  /** The emergency control, for the control socket: 503 STARTING until the engine runs. */
  emergencyOrStarting(): EmergencyControl {
    const e = this.#parts.emergency;
    if (!e) throw new AegisError("STARTING", "the agent is still starting");
    return e;
  }

  addBlocker(b: Blocker): void {
    this.#blockers.push(b);
  }

  /** A start blocker that no longer holds: out of the report, said in the log. */
  clearBlocker(code: BlockerCode, why: string): void {
    const i = this.#blockers.findIndex((b) => b.code === code);
    if (i < 0) return;
    this.#blockers.splice(i, 1);
    const audit = this.#parts.machine?.state === "AUDIT_FALLBACK";
    log("run").warn(
      literal(`${code} cleared: ${why}${audit ? "; restart the agent to enforce it" : ""}`),
    );
  }

  /** The maps hold a policy just applied: the report says so. */
  policyApplied(status: PolicyStatus, needs: PolicyNeeds | null = null): void {
    this.#policyStatus = status;
    // the blockers follow the policy the maps now hold (e.g. deny_binary_hash
    // needs a content source); null: unreadable, the last known needs stay
    if (needs) this.#needs = needs;
  }

  /**
   * Where the content of executed files comes from (posture/exec_identity.ts):
   * from the attached programs once the engine runs; null before the probes.
   */
  execIdentity(): ExecIdentity | null {
    const { probe, engine } = this.#parts;
    if (!probe) return null;
    return execIdentity(probe, engine?.attachedSections() ?? null);
  }

  /** A content scan ran (an apply, the restore): the report shows the last one. */
  contentScanned(summary: ContentScanSummary): void {
    this.#contentScan = summary;
    this.rebuild();
  }

  /** The stored policy could not be restored: its counts are not what the kernel holds. */
  restoreFailed(): void {
    this.#policyStatus = { ...NO_POLICY, snapshot: this.#policyStatus.snapshot };
  }

  /** Build the report again and write it (nothing before the probes ran). */
  rebuild(): void {
    const probe = this.#parts.probe;
    if (!probe) return;
    const { machine: sm, emergency, engine, proofs, policy, selfProtection } = this.#parts;
    const i = this.init;
    this.#report = buildReport({
      probe,
      needs: this.#needs,
      runtimeState: sm?.state ?? null,
      transitions: sm?.summary() ?? {
        total: 0,
        degradation_total: 0,
        strict_mode: i.strictMode,
        enforce_requested: i.enforceRequested,
      },
      policy: { ...this.#policyStatus, unresolved: policy?.unresolved() ?? [] },
      emergencyActive: emergency ? this.emergencyActive() : null,
      attachedSections: engine?.attachedSections() ?? null,
      generatedBy: "daemon",
      now: Math.floor(Date.now() / 1000),
      extraBlockers: this.#blockers,
      selfProtection,
      contentScan: this.#contentScan,
      proof: {
        intervalSeconds: i.proofInterval,
        results: proofs?.prover.results ?? {},
        unenforced: proofs?.verifier.unenforced ?? [],
      },
    });
    try {
      writeReport(i.capabilitiesPath, this.#report);
    } catch (e) {
      log("run").error(literal(`cannot write ${i.capabilitiesPath}: ${e}`), {
        path: i.capabilitiesPath,
      });
    }
  }
}
