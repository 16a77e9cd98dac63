/**
 * Probe: IMA and whether its policy appraises (has "appraise" rules). IMA
 * appraisal is what makes file hashes trustworthy for exec identity
 * ([require_ima_appraisal], docs/policy.md). Debian's kernels have neither
 * CONFIG_IMA_READ_POLICY nor CONFIG_IMA_WRITE_POLICY: the policy file is
 * write-only, then gone after one write, so the answer there is "unknown"
 * (never guessed).
 * Reads /sys/kernel/security/ima/policy (securityfs; readable with
 * CONFIG_IMA_READ_POLICY).
 *
 * @module
 */
import { errorText, type ProbeFs, type ProbeResult, unknown, unsupported } from "../probe.ts";

export const IMA_DIR = "/sys/kernel/security/ima";
export const IMA_POLICY_PATH = `${IMA_DIR}/policy`;
export const SECURITYFS_LSM = "/sys/kernel/security/lsm";

export interface Ima {
  /** the policy has at least one appraise rule */
  appraisal: boolean;
  appraise_rules: number;
}

export async function probeIma(fs: ProbeFs): Promise<ProbeResult<Ima>> {
  try {
    await fs.stat(IMA_DIR);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) {
      return unknown(`cannot stat ${IMA_DIR}: ${errorText(e)}`);
    }
    // no ima dir: either IMA is off or securityfs is not mounted
    try {
      await fs.stat(SECURITYFS_LSM);
    } catch {
      return unknown(
        "securityfs is not mounted, IMA cannot be checked; mount -t securityfs none /sys/kernel/security",
      );
    }
    return unsupported(
      `${IMA_DIR} does not exist: the kernel has no IMA (CONFIG_IMA); use a kernel with IMA`,
    );
  }
  let text: string;
  try {
    text = await fs.readText(IMA_POLICY_PATH);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return unknown(
        `IMA is present but ${IMA_POLICY_PATH} cannot be read: it does not exist (a kernel ` +
          "without CONFIG_IMA_WRITE_POLICY removes it once a policy was written)",
      );
    }
    return unknown(
      `IMA is present but ${IMA_POLICY_PATH} cannot be read (${errorText(e)}); ` +
        `the kernel may lack CONFIG_IMA_READ_POLICY`,
    );
  }
  // a rule's action is its first word: appraise (or appraise_*, as the C++
  // agent counts); dont_appraise is not one
  const rules = text.split("\n").filter((l) => /^\s*appraise(_\S*)?(\s|$)/.test(l)).length;
  return { status: "supported", value: { appraisal: rules > 0, appraise_rules: rules } };
}
