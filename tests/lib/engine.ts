/**
 * Test helper for enforcement tests (VM tier): load the embedded object
 * with chosen programs through the agent's own code, write rules and
 * switches, and collect the block records the kernel emits.
 *
 *   await using eng = await loadEngine((section) => section === "lsm/file_open");
 *   eng.setPolicy(AEGIS_POL_FILE_RULES);
 *   eng.map("aegis_deny_inode").update(key, ruleValue(1, AEGIS_RULE_DENY, AEGIS_RT_INODE));
 *   ... act ...
 *   const recs = eng.records();   // drained and decoded since the last call
 *
 * @module
 */
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import { isSelfProgram } from "../../src/bpf/engine.ts";
import {
  AEGIS_CFG_AUDIT_ONLY,
  AEGIS_CFG_EMERGENCY_DISABLE,
  AEGIS_CFG_GENERATION,
} from "../../src/bpf/abi_gen.ts";
import type { BpfMap } from "../../src/bpf/map.ts";
import { type AttachResult, BpfObject } from "../../src/bpf/object.ts";
import { policyValue, u32Key } from "../../src/bpf/rule_codec.ts";
import type { KernelRecord } from "../../src/events/decode.ts";
import { EventDrain } from "../../src/events/drain.ts";
import { bumpHashEpoch } from "../../src/policy/generations.ts";
import type { NativeRing, Shim } from "../../src/native/mod.ts";
import type { MapName } from "../../src/bpf/abi_gen.ts";

export interface Engine extends AsyncDisposable {
  obj: BpfObject;
  attach: AttachResult[];
  map(name: MapName): BpfMap;
  /**
   * aegis_policy[gen].flags = flags (gen defaults to the live generation 0),
   * and a new AEGIS_CFG_HASH_EPOCH, as every policy apply: call it after
   * changing aegis_deny_hash, or a file verified before is not hashed again.
   */
  setPolicy(flags: number, gen?: number): void;
  /** Switch the live rule generation (AEGIS_CFG_GENERATION), with a new hash epoch. */
  setGeneration(gen: number): void;
  setAudit(on: boolean): void;
  setEmergency(on: boolean): void;
  /** Records drained and decoded since the last call. */
  records(): KernelRecord[];
}

/** Load the object with the programs `want` selects; attach them all. */
export async function loadEngine(
  want: (section: string, program: string) => boolean,
  runtimeDir?: string,
): Promise<Engine> {
  const shim: Shim = await openEmbeddedShim(runtimeDir);
  let obj: BpfObject | undefined;
  let ring: NativeRing | undefined;
  try {
    obj = BpfObject.open(shim, await bpfObjectBytes());
    // the self-protection guards (bpf/self.bpf.c) share hooks with the file surface; a
    // surface's test never loads them (the daemon does only with run --self-protect)
    obj.selectPrograms((p, s) => want(s, p) && !isSelfProgram(p));
    obj.load();
    const attach = obj.attachAll();
    ring = shim.openRing(obj.map("aegis_events").fd);
    const pending: KernelRecord[] = [];
    const drain = new EventDrain(ring, (r) => pending.push(r));
    const o = obj;
    const cfg = o.map("aegis_config");
    return {
      obj: o,
      attach,
      map: (name) => o.map(name),
      // as a policy apply: a new policy is a new hash epoch (files verified
      // under the old one are hashed again)
      setPolicy: (flags, gen = 0) => {
        o.map("aegis_policy").update(u32Key(gen), policyValue(flags));
        bumpHashEpoch((n) => o.map(n));
      },
      setGeneration: (gen) => {
        cfg.setU64(AEGIS_CFG_GENERATION, BigInt(gen));
        bumpHashEpoch((n) => o.map(n));
      },
      setAudit: (on) => cfg.setU64(AEGIS_CFG_AUDIT_ONLY, on ? 1n : 0n),
      setEmergency: (on) => cfg.setU64(AEGIS_CFG_EMERGENCY_DISABLE, on ? 1n : 0n),
      records: () => {
        drain.drainNow();
        return pending.splice(0);
      },
      [Symbol.asyncDispose]: () => {
        ring?.close();
        o.close();
        shim.close();
        return Promise.resolve();
      },
    };
  } catch (e) {
    ring?.close();
    obj?.close();
    shim.close();
    throw e;
  }
}
