/**
 * Probe: BPF LSM really attachable. Loads the agent's own lsm/file_open
 * program (no pins, no rules: it denies nothing), attaches it, and detaches
 * it at once. This is the one probe that touches the kernel, and it needs
 * root and the shim; the trial is injected so the classification is tested
 * on fixtures.
 *
 * Attached is not enforcing: a kernel booted without `bpf` in `lsm=` loads
 * and attaches LSM programs that never run. The report's enforce
 * capability therefore needs this probe AND `bpf` in the active LSM list.
 *
 * @module
 */
import { Engine } from "../../bpf/engine.ts";
import { AegisError, NativeCallError, VerifierError } from "../../errors.ts";
import type { Shim } from "../../native/mod.ts";
import { errorText, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const TRIAL_SECTION = "lsm/file_open";

/** Load + attach the trial program, detach, and return the sections that attached. */
export type LsmAttachTrial = () => string[];

/** The real trial through the engine's loader: nothing pinned, closed before returning. */
export function engineLsmTrial(shim: Shim, objectBytes: Uint8Array<ArrayBuffer>): LsmAttachTrial {
  return () => {
    const engine = Engine.start(shim, objectBytes, {
      mode: "lsm",
      pinRoot: null,
      fileHook: "file",
      ringBytes: 4096,
      select: (s) => s === TRIAL_SECTION,
    });
    try {
      return engine.attachedSections();
    } finally {
      engine.close();
    }
  };
}

/**
 * Run the trial (or say why it cannot run) and classify the outcome:
 * EPERM on load, a verifier rejection or a failed attach is unsupported
 * (with the reason); anything else is unknown.
 */
export function probeBpfLsmAttach(
  trial: LsmAttachTrial | null,
  whyNoTrial = "no shim to load a trial program with",
): ProbeResult<{ section: string }> {
  if (!trial) return unknown(`cannot try to attach an LSM program: ${whyNoTrial}`);
  let attached: string[];
  try {
    attached = trial();
  } catch (e) {
    if (e instanceof NativeCallError && e.call === "aegis_obj_load" && e.errno === 1) {
      return unsupported(
        `the kernel refuses to load an LSM program (EPERM from ${e.call}): BPF LSM is not ` +
          `usable on this kernel or in this sandbox even if bpf is listed in ` +
          `/sys/kernel/security/lsm; check kernel lockdown and hypervisor or container restrictions`,
      );
    }
    if (e instanceof VerifierError) {
      return unsupported(`the kernel verifier rejected the trial LSM program: ${e.message}`);
    }
    if (e instanceof AegisError && e.code === "ATTACH_CONTRACT_MISMATCH") {
      return unsupported(`the trial LSM program loaded but did not attach: ${e.message}`);
    }
    if (e instanceof NativeCallError) {
      return unsupported(`the trial LSM program failed: ${e.message}`);
    }
    return unknown(`the LSM attach trial failed: ${errorText(e)}`);
  }
  if (!attached.includes(TRIAL_SECTION)) {
    return unsupported(
      `${TRIAL_SECTION} was not attached: the kernel BTF has no bpf_lsm_file_open ` +
        `(kernel without CONFIG_BPF_LSM)`,
    );
  }
  return { status: "supported", value: { section: TRIAL_SECTION } };
}
