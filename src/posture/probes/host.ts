/**
 * The host's probe dependencies: the embedded shim's BTF query and the LSM
 * attach trial, when this process can have them (root). The CLI opens them
 * for one command; the daemon builds them from the shim it already has.
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../../assets/mod.ts";
import type { Shim } from "../../native/mod.ts";
import { type BtfFuncQuery, errorText } from "../probe.ts";
import { engineLsmTrial, type LsmAttachTrial } from "./bpf_lsm_attach.ts";
import type { LandlockAbiQuery } from "./landlock.ts";
import type { ProbeOptions } from "./mod.ts";

export interface HostProbeDeps extends Disposable {
  hasBtfFunc: BtfFuncQuery;
  landlockAbi: LandlockAbiQuery;
  lsmTrial: LsmAttachTrial | null;
  lsmTrialUnavailable?: string;
  /** why symbol probes are unknown, when they are */
  limitation: string | null;
}

/** Probe options from a shim the caller owns (the daemon's). */
export function shimProbeOptions(
  shim: Shim,
  objectBytes: Uint8Array<ArrayBuffer>,
): Required<Pick<ProbeOptions, "hasBtfFunc" | "lsmTrial" | "landlockAbi">> {
  return {
    hasBtfFunc: (n) => shim.btfHasFunc(n),
    landlockAbi: () => shim.landlockAbi(),
    lsmTrial: engineLsmTrial(shim, objectBytes),
  };
}

/**
 * Open the embedded shim for probing when running as root; otherwise (or
 * when it cannot be opened) the deps say why symbol probes and the attach
 * trial are unknown. Dispose to close the shim.
 */
export async function openHostProbeDeps(uid: number | null = Deno.uid()): Promise<HostProbeDeps> {
  const none = (why: string): HostProbeDeps => ({
    hasBtfFunc: null,
    landlockAbi: null,
    lsmTrial: null,
    lsmTrialUnavailable: why,
    limitation: why,
    [Symbol.dispose]: () => {},
  });
  if (uid !== 0) return none("not running as root (BTF queries and the LSM trial need root)");
  let shim: Shim;
  try {
    shim = await openEmbeddedShim();
  } catch (e) {
    return none(`the embedded shim could not be opened: ${errorText(e)}`);
  }
  try {
    const o = shimProbeOptions(shim, await bpfObjectBytes());
    return { ...o, limitation: null, [Symbol.dispose]: () => shim.close() } as HostProbeDeps;
  } catch (e) {
    shim.close();
    return none(`the embedded BPF object could not be read: ${errorText(e)}`);
  }
}
