/**
 * Encoders for rule-map keys and values (bpf/include/aegis_abi.h). Offsets
 * and sizes come from the generated layout; every encoder returns a fresh
 * buffer of exactly the struct's size, padding zeroed.
 *
 * @module
 */
import { ABI_LAYOUT } from "./abi_gen.ts";
import { fromHex } from "../util/bytes.ts";

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

/** struct aegis_cg_inode_key: a cgroup-scoped inode rule. */
export function cgInodeKey(
  cgid: bigint,
  dev: number,
  ino: bigint | number,
  gen: number,
): Uint8Array<ArrayBuffer> {
  const f = S.aegis_cg_inode_key.fields;
  const [b, dv] = buf(S.aegis_cg_inode_key.size);
  dv.setBigUint64(f.cgid.offset, cgid, true);
  dv.setBigUint64(f.ino.offset, BigInt(ino), true);
  dv.setUint32(f.dev.offset, dev, true);
  dv.setUint32(f.gen.offset, gen, true);
  return b;
}

/** struct aegis_cg_ip_key: `addr` in network byte order, 4 (IPv4) or 16 bytes. */
export function cgIpKey(cgid: bigint, addr: Uint8Array, gen: number): Uint8Array<ArrayBuffer> {
  if (addr.length !== 4 && addr.length !== 16) {
    throw new RangeError(`cgroup ip rule: address of ${addr.length} bytes (want 4 or 16)`);
  }
  const f = S.aegis_cg_ip_key.fields;
  const [b, dv] = buf(S.aegis_cg_ip_key.size);
  dv.setBigUint64(f.cgid.offset, cgid, true);
  dv.setUint32(f.gen.offset, gen, true);
  b[f.family.offset] = addr.length === 4 ? 2 : 10;
  b.set(addr, f.addr.offset);
  return b;
}

/** struct aegis_cg_port_key: proto 0 any/6/17, dir 0 egress/1 bind/2 both. */
export function cgPortKey(
  cgid: bigint,
  port: number,
  proto: number,
  dir: number,
  gen: number,
): Uint8Array<ArrayBuffer> {
  const f = S.aegis_cg_port_key.fields;
  const [b, dv] = buf(S.aegis_cg_port_key.size);
  dv.setBigUint64(f.cgid.offset, cgid, true);
  dv.setUint32(f.gen.offset, gen, true);
  dv.setUint16(f.port.offset, port, true);
  b[f.proto.offset] = proto;
  b[f.dir.offset] = dir;
  return b;
}

/** struct aegis_cgroup_key (allow_cgroup). */
export function cgroupKey(cgid: bigint, gen: number): Uint8Array<ArrayBuffer> {
  const f = S.aegis_cgroup_key.fields;
  const [b, dv] = buf(S.aegis_cgroup_key.size);
  dv.setBigUint64(f.cgid.offset, cgid, true);
  dv.setUint32(f.gen.offset, gen, true);
  return b;
}

/** struct aegis_hash_key (deny_binary_hash): `sha256` as 64 hex digits. */
export function hashKey(sha256: string, gen: number): Uint8Array<ArrayBuffer> {
  if (!/^[0-9a-fA-F]{64}$/.test(sha256)) {
    throw new RangeError(`hash rule: "${sha256}" is not 64 hex digits`);
  }
  const f = S.aegis_hash_key.fields;
  const [b, dv] = buf(S.aegis_hash_key.size);
  b.set(fromHex(sha256), f.sha256.offset);
  dv.setUint32(f.gen.offset, gen, true);
  return b;
}

/** struct aegis_self_obj_key: a map or link id the self-protection guards watch. */
export function selfObjKey(id: number, guard: number): Uint8Array<ArrayBuffer> {
  const f = S.aegis_self_obj_key.fields;
  const [b, dv] = buf(S.aegis_self_obj_key.size);
  dv.setUint32(f.id.offset, id, true);
  dv.setUint32(f.guard.offset, guard, true);
  return b;
}
