/**
 * IP address text to bytes, one strict grammar for the whole agent (policy
 * rules, live rules, --http-listen): dotted quads without leading zeros,
 * IPv6 groups with at most one "::" and an optional dotted-quad tail; no
 * zone ids, no brackets.
 *
 * @module
 */

/** An address in network byte order. */
export interface IpAddr {
  family: 4 | 6;
  bytes: Uint8Array<ArrayBuffer>;
}

/** Why a text is not an address (the caller names what and where). */
export class IpSyntaxError extends Error {}

function parseIp4(text: string): Uint8Array<ArrayBuffer> {
  const parts = text.split(".");
  if (parts.length !== 4) throw new IpSyntaxError("an IPv4 address has 4 dotted numbers");
  const out = new Uint8Array(4);
  parts.forEach((p, i) => {
    if (!/^\d{1,3}$/.test(p)) throw new IpSyntaxError(`"${p}" is not a number from 0 to 255`);
    if (p.length > 1 && p.startsWith("0")) {
      throw new IpSyntaxError(`"${p}" has a leading zero (octal is not accepted)`);
    }
    const n = Number(p);
    if (n > 255) throw new IpSyntaxError(`${n} is above 255`);
    out[i] = n;
  });
  return out;
}

function parseGroups(text: string, last: boolean): number[] {
  if (text === "") return [];
  const groups: number[] = [];
  const parts = text.split(":");
  parts.forEach((p, i) => {
    if (last && i === parts.length - 1 && p.includes(".")) {
      const v4 = parseIp4(p);
      groups.push((v4[0] << 8) | v4[1], (v4[2] << 8) | v4[3]);
      return;
    }
    if (!/^[0-9a-fA-F]{1,4}$/.test(p)) {
      throw new IpSyntaxError(`"${p}" is not a group of 1 to 4 hex digits`);
    }
    groups.push(parseInt(p, 16));
  });
  return groups;
}

function parseIp6(text: string): Uint8Array<ArrayBuffer> {
  if (text.includes("%")) throw new IpSyntaxError("zone ids (%...) are not accepted");
  const halves = text.split("::");
  if (halves.length > 2) throw new IpSyntaxError(`"::" may appear only once`);
  const head = parseGroups(halves[0], halves.length === 1);
  let groups: number[];
  if (halves.length === 2) {
    const tail = parseGroups(halves[1], true);
    if (head.length + tail.length > 7) {
      throw new IpSyntaxError(`"::" must stand for at least one group`);
    }
    groups = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    if (head.length !== 8) throw new IpSyntaxError("an IPv6 address has 8 groups (or uses ::)");
    groups = head;
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/**
 * Parse an address; a text with a ":" is IPv6. `family` restricts the
 * result. Throws IpSyntaxError saying why.
 */
export function parseIpAddr(text: string, family?: 4 | 6): IpAddr {
  const isV6 = text.includes(":");
  if (family === 4 && isV6) throw new IpSyntaxError("an IPv4 address is required here");
  if (family === 6 && !isV6) throw new IpSyntaxError("an IPv6 address is required here");
  if (text === "") throw new IpSyntaxError("empty address");
  if (text.startsWith("[")) throw new IpSyntaxError("brackets belong only around ip:port");
  return isV6 ? { family: 6, bytes: parseIp6(text) } : { family: 4, bytes: parseIp4(text) };
}

/** The address, or null when `text` is not one. */
export function tryParseIpAddr(text: string, family?: 4 | 6): IpAddr | null {
  try {
    return parseIpAddr(text, family);
  } catch (e) {
    if (e instanceof IpSyntaxError) return null;
    throw e;
  }
}

/** 127.0.0.0/8, ::1, or ::ffff:127.x.y.z. */
export function isLoopbackAddr(ip: IpAddr): boolean {
  const b = ip.bytes;
  if (ip.family === 4) return b[0] === 127;
  const zero = (from: number, to: number) => b.subarray(from, to).every((x) => x === 0);
  if (zero(0, 15) && b[15] === 1) return true;
  return zero(0, 10) && b[10] === 0xff && b[11] === 0xff && b[12] === 127;
}
