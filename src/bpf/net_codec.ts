/**
 * Network rules: parse their text forms and encode them into the keys of
 * the network rule maps (bpf/include/aegis_abi.h, decided by
 * bpf/lib/net.h). Addresses are kept as bytes in network order, ports as
 * numbers (keys hold host order, as the kernel side compares them).
 *
 *   parseIp("10.1.2.3") · parseIp("2001:db8::1") · parseIp("::ffff:1.2.3.4")
 *   parseCidr("10.0.0.0/8") · parseCidr("2001:db8::/32")
 *   parsePort("443") · parsePort("53:udp") · parsePort("8080:tcp:bind")
 *   parseIpPort("1.2.3.4:443:tcp") · parseIpPort("[2001:db8::1]:443:udp")
 *
 * Bad input throws UsageError naming the value and the reason.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { type IpAddr, IpSyntaxError, parseIpAddr } from "../util/ip.ts";
import {
  ABI_LAYOUT,
  AEGIS_POL_NET_CIDR,
  AEGIS_POL_NET_IP,
  AEGIS_POL_NET_IP_PORT,
  AEGIS_POL_NET_PORT,
  AEGIS_RT_CIDR,
  AEGIS_RT_IP,
  AEGIS_RT_IP_PORT,
  AEGIS_RT_PORT,
  type MapName,
} from "./abi_gen.ts";

const S = ABI_LAYOUT.structs;

/** 0 any, 6 tcp, 17 udp (the `proto` of port keys). */
export type NetProto = 0 | 6 | 17;
/** 0 egress (connect, sendmsg), 1 bind, 2 both (the `dir` of port keys). */
export type NetDir = 0 | 1 | 2;

export const PROTO_ANY = 0;
export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const DIR_EGRESS = 0;
export const DIR_BIND = 1;
export const DIR_BOTH = 2;

/** Names of protocols and directions in rules. */
export type ProtoName = "any" | "tcp" | "udp";
export type DirName = "egress" | "bind" | "both";

const PROTO_NAMES: ReadonlyArray<readonly [ProtoName, NetProto]> = [["any", 0], ["tcp", 6], [
  "udp",
  17,
]];
const DIR_NAMES: ReadonlyArray<readonly [DirName, NetDir]> = [["egress", 0], ["bind", 1], [
  "both",
  2,
]];
/** Protocol names to numbers (a Map: input never reaches Object.prototype). */
export const PROTO_BY_NAME: ReadonlyMap<string, NetProto> = new Map(PROTO_NAMES);
/** Direction names to numbers. */
export const DIR_BY_NAME: ReadonlyMap<string, NetDir> = new Map(DIR_NAMES);
const PROTO_NAME = new Map(PROTO_NAMES.map(([name, n]) => [n, name]));
const DIR_NAME = new Map(DIR_NAMES.map(([name, n]) => [n, name]));

/** The name of a protocol number. */
export function protoName(proto: NetProto): ProtoName {
  return PROTO_NAME.get(proto)!;
}

/** The name of a direction number. */
export function dirName(dir: NetDir): DirName {
  return DIR_NAME.get(dir)!;
}

export interface Cidr {
  family: 4 | 6;
  /** Network address, host bits cleared. */
  bytes: Uint8Array<ArrayBuffer>;
  prefix: number;
  /** The text had host bits set (e.g. "10.1.2.3/8"); they were cleared. */
  hostBitsCleared: boolean;
}

export interface PortRule {
  port: number;
  proto: NetProto;
  dir: NetDir;
}

export interface IpPortRule {
  ip: IpAddr;
  port: number;
  proto: NetProto;
}

/** A map name and the key to write into it. */
export interface NetKey {
  map: MapName;
  key: Uint8Array<ArrayBuffer>;
}

function bad(kind: string, text: string, why: string): UsageError {
  return new UsageError(`Invalid ${kind} "${text}": ${why}`);
}

function parseAddr(text: string, kind: string, whole: string, family?: 4 | 6): IpAddr {
  try {
    return parseIpAddr(text, family);
  } catch (e) {
    if (e instanceof IpSyntaxError) throw bad(kind, whole, e.message);
    throw e;
  }
}

/** "10.1.2.3", "2001:db8::1", "::ffff:1.2.3.4". `family` restricts the result. */
export function parseIp(text: string, family?: 4 | 6): IpAddr {
  return parseAddr(text.trim(), "IP address", text, family);
}

/** "10.0.0.0/8", "2001:db8::/32". Host bits are cleared and reported. */
export function parseCidr(text: string, family?: 4 | 6): Cidr {
  const t = text.trim();
  const slash = t.indexOf("/");
  if (slash < 0) throw bad("CIDR", text, `no "/<prefix length>"`);
  const ip = parseAddr(t.slice(0, slash), "CIDR", text, family);
  const lenText = t.slice(slash + 1);
  const max = ip.family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(lenText) || Number(lenText) > max) {
    throw bad("CIDR", text, `prefix length "${lenText}" must be a number from 0 to ${max}`);
  }
  const prefix = Number(lenText);
  const bytes = ip.bytes.slice();
  let cleared = false;
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefix - 8 * i));
    const mask = (0xff << (8 - keep)) & 0xff;
    if (bytes[i] & ~mask) cleared = true;
    bytes[i] &= mask;
  }
  return { family: ip.family, bytes, prefix, hostBitsCleared: cleared };
}

function parsePortNumber(p: string, kind: string, whole: string): number {
  if (!/^\d{1,5}$/.test(p)) throw bad(kind, whole, `port "${p}" is not a number from 1 to 65535`);
  const n = Number(p);
  if (n < 1 || n > 65535) throw bad(kind, whole, `port ${n} is not from 1 to 65535`);
  return n;
}

function parseProto(p: string | undefined, kind: string, whole: string): NetProto {
  if (p === undefined) return PROTO_ANY;
  const v = PROTO_BY_NAME.get(p.toLowerCase());
  if (v === undefined) throw bad(kind, whole, `protocol "${p}" is not tcp, udp or any`);
  return v;
}

/** "443", "443:tcp", "53:udp:egress", "8080:any:bind". Default proto any, dir egress. */
export function parsePort(text: string): PortRule {
  const parts = text.trim().split(":");
  if (parts.length > 3) throw bad("port", text, "expected port[:tcp|udp|any[:egress|bind|both]]");
  const port = parsePortNumber(parts[0], "port", text);
  const proto = parseProto(parts[1], "port", text);
  let dir: NetDir = DIR_EGRESS;
  if (parts[2] !== undefined) {
    const d = DIR_BY_NAME.get(parts[2].toLowerCase());
    if (d === undefined) {
      throw bad("port", text, `direction "${parts[2]}" is not egress, bind or both`);
    }
    dir = d;
  }
  return { port, proto, dir };
}

/** "1.2.3.4:443", "1.2.3.4:443:tcp", "[2001:db8::1]:443:udp". Default proto any. */
export function parseIpPort(text: string): IpPortRule {
  const t = text.trim();
  const kind = "ip:port";
  let addr: string;
  let rest: string;
  if (t.startsWith("[")) {
    const close = t.indexOf("]");
    if (close < 0) throw bad(kind, text, `no closing "]"`);
    addr = t.slice(1, close);
    if (!addr.includes(":")) throw bad(kind, text, "brackets are for IPv6 addresses");
    if (t[close + 1] !== ":") throw bad(kind, text, `expected ":<port>" after "]"`);
    rest = t.slice(close + 2);
  } else {
    const parts = t.split(":");
    if (parts.length > 3) {
      throw bad(
        kind,
        text,
        parts[0].includes(".")
          ? "expected <ip>:<port>[:tcp|udp|any]"
          : "write IPv6 addresses in brackets: [2001:db8::1]:443",
      );
    }
    if (parts.length < 2) throw bad(kind, text, `expected <ip>:<port>[:tcp|udp|any]`);
    addr = parts[0];
    rest = parts.slice(1).join(":");
  }
  const ip = parseAddr(addr, kind, text);
  const parts = rest.split(":");
  if (parts.length > 2) throw bad(kind, text, `expected <ip>:<port>[:tcp|udp|any]`);
  return {
    ip,
    port: parsePortNumber(parts[0], kind, text),
    proto: parseProto(parts[1], kind, text),
  };
}

function buf(size: number): [Uint8Array<ArrayBuffer>, DataView] {
  const b = new Uint8Array(size);
  return [b, new DataView(b.buffer)];
}

/** aegis_deny_ip4 / aegis_deny_ip6 key of an exact address. */
export function ipKey(ip: IpAddr, gen: number): NetKey {
  const st = ip.family === 4 ? S.aegis_ip4_key : S.aegis_ip6_key;
  const [b, dv] = buf(st.size);
  dv.setUint32(st.fields.gen.offset, gen, true);
  b.set(ip.bytes, st.fields.addr.offset);
  return { map: ip.family === 4 ? "aegis_deny_ip4" : "aegis_deny_ip6", key: b };
}

/** aegis_deny_cidr4 / aegis_deny_cidr6 key; prefixlen counts the gen word (32 + prefix). */
export function cidrKey(c: Cidr, gen: number): NetKey {
  const st = c.family === 4 ? S.aegis_lpm4_key : S.aegis_lpm6_key;
  const [b, dv] = buf(st.size);
  dv.setUint32(st.fields.prefixlen.offset, 32 + c.prefix, true);
  dv.setUint32(st.fields.gen.offset, gen, true);
  b.set(c.bytes, st.fields.addr.offset);
  return { map: c.family === 4 ? "aegis_deny_cidr4" : "aegis_deny_cidr6", key: b };
}

/** aegis_deny_port key. */
export function portKey(p: PortRule, gen: number): NetKey {
  const f = S.aegis_port_key.fields;
  const [b, dv] = buf(S.aegis_port_key.size);
  dv.setUint32(f.gen.offset, gen, true);
  dv.setUint16(f.port.offset, p.port, true);
  dv.setUint8(f.proto.offset, p.proto);
  dv.setUint8(f.dir.offset, p.dir);
  return { map: "aegis_deny_port", key: b };
}

/** aegis_deny_ip4_port / aegis_deny_ip6_port key. */
export function ipPortKey(r: IpPortRule, gen: number): NetKey {
  const st = r.ip.family === 4 ? S.aegis_ip4_port_key : S.aegis_ip6_port_key;
  const [b, dv] = buf(st.size);
  dv.setUint32(st.fields.gen.offset, gen, true);
  b.set(r.ip.bytes, st.fields.addr.offset);
  dv.setUint16(st.fields.port.offset, r.port, true);
  dv.setUint8(st.fields.proto.offset, r.proto);
  return { map: r.ip.family === 4 ? "aegis_deny_ip4_port" : "aegis_deny_ip6_port", key: b };
}

/**
 * The aegis_policy bit that says a generation holds rules of the network
 * rule type `rt` (AEGIS_RT_IP, _CIDR, _PORT, _IP_PORT); the hooks skip the
 * lookups of a table whose bit is clear once AEGIS_POL_NET_TABLES is set.
 */
export function netTableFlag(rt: number): number {
  switch (rt) {
    case AEGIS_RT_IP:
      return AEGIS_POL_NET_IP;
    case AEGIS_RT_CIDR:
      return AEGIS_POL_NET_CIDR;
    case AEGIS_RT_PORT:
      return AEGIS_POL_NET_PORT;
    case AEGIS_RT_IP_PORT:
      return AEGIS_POL_NET_IP_PORT;
  }
  throw new Error(`netTableFlag: ${rt} is not a network rule type`);
}
