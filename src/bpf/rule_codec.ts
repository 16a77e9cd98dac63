/**
 * Encoders for rule-map keys and values (bpf/include/aegis_abi.h). Offsets
 * and sizes come from the generated layout; every encoder returns a fresh
 * buffer of exactly the struct's size, padding zeroed.
 *
 * @module
 */
import { ABI_LAYOUT } from "./abi_gen.ts";

const S = ABI_LAYOUT.structs;

function buf(size: number): [Uint8Array<ArrayBuffer>, DataView] {
  const b = new Uint8Array(size);
  return [b, new DataView(b.buffer)];
}

/** Kernel dev encoding (major << 20 | minor) of a user-space st_dev (glibc encoding). */
export function kernelDev(stDev: number): number {
  const major = ((stDev >>> 8) & 0xfff) | (Math.floor(stDev / 2 ** 32) & ~0xfff);
  const minor = (stDev & 0xff) | ((stDev >>> 12) & 0xfff00);
  return ((major << 20) | minor) >>> 0;
}

/** struct aegis_inode_key. `dev` is the kernel encoding (see kernelDev). */
export function inodeKey(dev: number, ino: bigint | number, gen: number): Uint8Array<ArrayBuffer> {
  const f = S.aegis_inode_key.fields;
  const [b, dv] = buf(S.aegis_inode_key.size);
  dv.setBigUint64(f.ino.offset, BigInt(ino), true);
  dv.setUint32(f.dev.offset, dev, true);
  dv.setUint32(f.gen.offset, gen, true);
  return b;
}

/** struct aegis_rule. */
export function ruleValue(
  ruleId: number,
  flags: number,
  ruleType: number,
): Uint8Array<ArrayBuffer> {
  const f = S.aegis_rule.fields;
  const [b, dv] = buf(S.aegis_rule.size);
  dv.setUint32(f.rule_id.offset, ruleId, true);
  dv.setUint16(f.flags.offset, flags, true);
  dv.setUint16(f.rule_type.offset, ruleType, true);
  return b;
}

/** struct aegis_policy. */
export function policyValue(flags: number): Uint8Array<ArrayBuffer> {
  const [b, dv] = buf(S.aegis_policy.size);
  dv.setBigUint64(S.aegis_policy.fields.flags.offset, BigInt(flags), true);
  return b;
}

/** u32 array index key. */
export function u32Key(i: number): Uint8Array<ArrayBuffer> {
  const [b, dv] = buf(4);
  dv.setUint32(0, i, true);
  return b;
}
