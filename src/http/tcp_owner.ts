/**
 * The uid that owns the client end of a loopback TCP connection, from the
 * kernel's socket tables (/proc/net/tcp, /proc/net/tcp6). Used only when an
 * `/events` subscription is requested, to keep subscriber slots for root
 * (docs/http.md "SSE quotas"); never per request.
 *
 * The client's socket is the line whose local address is the client's
 * address:port and whose remote address is our address:port: a TCP 4-tuple
 * names one socket, so another user cannot make us read a root-owned line
 * for its own connection. A client that is not on loopback, or whose socket
 * is not found, has no known uid (null): the caller treats it as non-root.
 *
 * @module
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** "127.0.0.1:41234" / "[::1]:41234" → address bytes (16, IPv4 as ::ffff:a.b.c.d) and port. */
export function parseHostPort(s: string): { addr: Uint8Array; v4: boolean; port: number } | null {
  let host: string;
  let port: string;
  if (s.startsWith("[")) {
    const close = s.indexOf("]");
    if (close < 0 || s[close + 1] !== ":") return null;
    host = s.slice(1, close);
    port = s.slice(close + 2);
  } else {
    const colon = s.lastIndexOf(":");
    if (colon < 0) return null;
    host = s.slice(0, colon);
    port = s.slice(colon + 1);
  }
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) return null;
  const addr = host.includes(":") ? ipv6Bytes(host) : ipv4Bytes(host);
  if (!addr) return null;
  const v4 = addr.slice(0, 12).every((b, i) => b === (i >= 10 ? 0xff : 0));
  return { addr, v4, port: Number(port) };
}

function ipv4Bytes(h: string): Uint8Array | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  if (!m) return null;
  const out = new Uint8Array(16);
  out[10] = out[11] = 0xff;
  for (let i = 0; i < 4; i++) {
    const v = Number(m[i + 1]);
    if (v > 255) return null;
    out[12 + i] = v;
  }
  return out;
}

function ipv6Bytes(h: string): Uint8Array | null {
  let head = h;
  let tail: Uint8Array | null = null;
  const lastColon = h.lastIndexOf(":");
  if (h.slice(lastColon + 1).includes(".")) {
    tail = ipv4Bytes(h.slice(lastColon + 1));
    if (!tail) return null;
    head = h.slice(0, lastColon + 1) + "0:0";
  }
  const halves = head.split("::");
  if (halves.length > 2) return null;
  const groups = (p: string) => (p === "" ? [] : p.split(":"));
  const left = groups(halves[0]);
  const right = halves.length === 2 ? groups(halves[1]) : [];
  const fill = halves.length === 2 ? 8 - left.length - right.length : 0;
  if (fill < 0) return null;
  const all = [...left, ...Array(fill).fill("0"), ...right];
  if (all.length !== 8 || !all.every((g) => /^[0-9A-Fa-f]{1,4}$/.test(g))) return null;
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  if (tail) out.set(tail.subarray(12), 12);
  return out;
}

/** The address as the kernel prints it in /proc/net/tcp (4 bytes) or tcp6 (16 bytes). */
function procHex(bytes: Uint8Array): string {
  let s = "";
  for (let w = 0; w < bytes.length; w += 4) {
    const word = LITTLE_ENDIAN ? bytes.slice(w, w + 4).reverse() : bytes.slice(w, w + 4);
    for (const b of word) s += b.toString(16).padStart(2, "0");
  }
  return s.toUpperCase();
}

function procEndpoint(addr: Uint8Array, port: number, v6: boolean): string {
  const a = v6 ? addr : addr.subarray(12);
  return `${procHex(a)}:${port.toString(16).toUpperCase().padStart(4, "0")}`;
}

function isLoopbackBytes(a: Uint8Array, v4: boolean): boolean {
  if (v4) return a[12] === 127;
  return a.every((b, i) => b === (i === 15 ? 1 : 0));
}

/** Find the uid column of the line `: <local> <remote> ` in a /proc/net/tcp* text. */
export function findOwnerUid(table: string, local: string, remote: string): number | null {
  const at = table.indexOf(`: ${local} ${remote} `);
  if (at < 0) return null;
  const end = table.indexOf("\n", at);
  const fields = table.slice(at + 2, end < 0 ? undefined : end).trim().split(/\s+/);
  // local rem st tx:rx tr:when retrnsmt uid ...
  const uid = fields[6];
  return uid !== undefined && /^\d+$/.test(uid) ? Number(uid) : null;
}

export interface TcpOwnerSource {
  readTable(file: "/proc/net/tcp" | "/proc/net/tcp6"): Promise<string>;
}

/**
 * A source that reads each table at most once at a time: lookups that
 * arrive while a read is running share the next read (which starts after
 * they asked, so it sees their sockets). A flood of /events requests then
 * costs one table read after another, never hundreds at once.
 */
export function coalescingSource(inner: TcpOwnerSource): TcpOwnerSource {
  const running = new Map<string, Promise<string>>();
  const queued = new Map<string, Promise<string>>();
  const start = (file: "/proc/net/tcp" | "/proc/net/tcp6"): Promise<string> => {
    const p = inner.readTable(file).finally(() => running.delete(file));
    running.set(file, p);
    return p;
  };
  return {
    readTable(file) {
      const now = running.get(file);
      if (now === undefined) return start(file);
      let next = queued.get(file);
      if (next === undefined) {
        next = now.catch(() => {}).then(() => {
          queued.delete(file);
          return start(file);
        });
        queued.set(file, next);
      }
      return next;
    },
  };
}

const procSource: TcpOwnerSource = coalescingSource({
  readTable: (file) => Deno.readTextFile(file),
});

/**
 * The uid owning the client socket of the connection remote → local (both
 * "addr:port" as our side sees them), or null when unknown or not loopback.
 */
export async function tcpPeerUid(
  remote: string,
  local: string,
  source: TcpOwnerSource = procSource,
): Promise<number | null> {
  const client = parseHostPort(remote);
  const server = parseHostPort(local);
  if (!client || !server || !isLoopbackBytes(client.addr, client.v4)) return null;
  // the client's socket: AF_INET when both ends are IPv4, else AF_INET6 (v4-mapped possibly)
  const tries: ["/proc/net/tcp" | "/proc/net/tcp6", boolean][] = client.v4 && server.v4
    ? [["/proc/net/tcp", false], ["/proc/net/tcp6", true]]
    : [["/proc/net/tcp6", true]];
  for (const [file, v6] of tries) {
    let table: string;
    try {
      table = await source.readTable(file);
    } catch {
      continue;
    }
    const uid = findOwnerUid(
      table,
      procEndpoint(client.addr, client.port, v6),
      procEndpoint(server.addr, server.port, v6),
    );
    if (uid !== null) return uid;
  }
  return null;
}
