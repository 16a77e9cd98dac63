/**
 * The CLI's way to the running daemon: HTTP over the root-only unix socket
 * (/run/aegisbpf/control.sock). `daemonRequest` answers null when no daemon
 * listens there, so a command can fall back to doing the work itself.
 *
 * @module
 */
import { aegisPaths } from "../contracts.ts";
import { AegisError, UsageError } from "../errors.ts";
import { concatBytes } from "../util/bytes.ts";

export interface DaemonReply {
  status: number;
  body: unknown;
}

const CONNECT_RETRIES = 100;
const CONNECT_RETRY_MS = 50;

/** Largest daemon reply the CLI reads (head and body). */
export const MAX_REPLY_BYTES = 64 << 20;

const CRLF2 = new Uint8Array([13, 10, 13, 10]);

function indexOf(hay: Uint8Array, needle: Uint8Array, from = 0): number {
  outer: for (let i = from; i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function badReply(socket: string, what: string): AegisError {
  return new AegisError("DAEMON_BAD_REPLY", `the daemon at ${socket} sent ${what}`);
}

/** Decode a chunked body (RFC 9112 §7.1); trailers are ignored. */
function dechunk(b: Uint8Array, socket: string): Uint8Array {
  const parts: Uint8Array[] = [];
  let off = 0;
  let total = 0;
  for (;;) {
    const eol = indexOf(b, CRLF2.subarray(0, 2), off);
    if (eol < 0) throw badReply(socket, "a truncated chunked body");
    const sizeText = new TextDecoder().decode(b.subarray(off, eol)).split(";")[0].trim();
    if (!/^[0-9a-fA-F]{1,8}$/.test(sizeText)) throw badReply(socket, "a bad chunk size");
    const size = parseInt(sizeText, 16);
    off = eol + 2;
    if (size === 0) break;
    if (off + size + 2 > b.length) throw badReply(socket, "a truncated chunk");
    parts.push(b.subarray(off, off + size));
    total += size;
    off += size + 2;
  }
  return concatBytes(parts, total);
}

/** Parse one complete HTTP/1.1 response (the connection was closed after it). */
function parseReply(bytes: Uint8Array, socket: string): Response {
  const end = indexOf(bytes, CRLF2);
  if (end < 0) throw badReply(socket, "no complete response head");
  const lines = new TextDecoder().decode(bytes.subarray(0, end)).split("\r\n");
  const m = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0]);
  if (!m) throw badReply(socket, `a bad status line ${JSON.stringify(lines[0].slice(0, 80))}`);
  const headers = new Headers();
  for (const l of lines.slice(1)) {
    const i = l.indexOf(":");
    if (i <= 0) throw badReply(socket, "a bad header line");
    headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
  }
  let body = bytes.subarray(end + 4);
  if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
    body = dechunk(body, socket);
  } else if (headers.has("content-length")) {
    const n = Number(headers.get("content-length"));
    if (!Number.isSafeInteger(n) || n < 0 || n > body.length) {
      throw badReply(socket, "a body shorter than its Content-Length");
    }
    body = body.subarray(0, n);
  }
  const status = Number(m[1]);
  const nullBody = status === 204 || status === 304 || (status >= 100 && status < 200);
  return new Response(nullBody ? null : body.slice(), { status, headers });
}

/** Write the request, read the reply to the end of the stream (bounded). */
async function exchange(
  conn: Deno.UnixConn,
  request: Uint8Array,
  what: string,
  socket: string,
): Promise<Uint8Array> {
  for (let off = 0; off < request.length;) off += await conn.write(request.subarray(off));
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    total += n;
    if (total > MAX_REPLY_BYTES) {
      throw badReply(socket, `a reply over ${MAX_REPLY_BYTES} bytes (${what})`);
    }
    chunks.push(buf.slice(0, n));
  }
  return concatBytes(chunks, total);
}

/** The exit code of a change whose outcome the CLI cannot know (docs/control.md). */
export const EXIT_OUTCOME_UNKNOWN = 3;

/**
 * A change was sent to the daemon and the connection broke before its
 * answer: it may or may not have been made. Never followed by a local
 * attempt (that could apply twice, or on top of a half-made change).
 */
function outcomeUnknown(method: string, path: string, socket: string, why: string): AegisError {
  const check = path.startsWith("/policy")
    ? "aegisbpf policy show"
    : path.startsWith("/rules")
    ? "aegisbpf block list"
    : "aegisbpf emergency-status";
  return new AegisError(
    "OUTCOME_UNKNOWN",
    `the request ${method} ${path} reached the daemon at ${socket}, then the connection broke ` +
      `(${why}): whether it took effect is unknown. Nothing was tried locally. Check with ` +
      `"${check}" (the daemon may have stopped: "aegisbpf health").`,
  );
}

/**
 * Send one request to the daemon's control socket and hand the response to
 * `read`. Null when there is no socket or nothing accepts on it (no
 * daemon): only then may a caller do the work itself. DAEMON_GONE when
 * the connection is reset as it is opened (nothing was sent). A POST or DELETE
 * whose connection breaks after the request was sent is OUTCOME_UNKNOWN. The request is plain HTTP/1.1 in origin-form with
 * `Connection: close`, written on a unix-socket connection; the reply is
 * read to the end of the stream (at most {@link MAX_REPLY_BYTES}). No
 * identity header is sent: the daemon takes the caller from the kernel
 * (SO_PEERCRED; docs/control.md).
 */
export async function withDaemon<T>(
  method: "GET" | "POST" | "DELETE",
  path: string,
  body: unknown,
  read: (res: Response) => Promise<T>,
  socket: string = aegisPaths().controlSocket,
  connect: (o: Deno.UnixConnectOptions) => Promise<Deno.UnixConn> = (o) => Deno.connect(o),
): Promise<T | null> {
  try {
    const st = Deno.statSync(socket);
    if (!st.isSocket) return null;
  } catch {
    return null;
  }
  if (!path.startsWith("/") || [...path].some((ch) => ch <= " " || ch === "\u007f")) {
    throw new UsageError(`bad control request path ${JSON.stringify(path)}`);
  }
  let conn: Deno.UnixConn | null = null;
  for (let attempt = 0; conn === null; attempt++) {
    try {
      conn = await connect({ transport: "unix", path: socket });
    } catch (e) {
      // a stale socket file with no daemon behind it
      if (e instanceof Deno.errors.ConnectionRefused || e instanceof Deno.errors.NotFound) {
        return null;
      }
      // the daemon's accept queue is full (a burst of connections): retry for up to 5 s
      if (e instanceof Deno.errors.WouldBlock && attempt < CONNECT_RETRIES) {
        await new Promise((r) => setTimeout(r, CONNECT_RETRY_MS));
        continue;
      }
      // the daemon died (or closed its socket) while we connected: not one byte
      // was written, so nothing changed; but a daemon was there, so no local try
      if (
        e instanceof Deno.errors.ConnectionReset || e instanceof Deno.errors.ConnectionAborted ||
        e instanceof Deno.errors.BrokenPipe
      ) {
        throw new AegisError(
          "DAEMON_GONE",
          `the daemon at ${socket} dropped the connection as it was opened (${e.message}): ` +
            `it may be stopping or restarting. Nothing was sent, so ${method} ${path} changed ` +
            `nothing. Retry when "aegisbpf health" answers.`,
        );
      }
      throw e;
    }
  }
  const enc = new TextEncoder();
  const payload = body === undefined ? new Uint8Array(0) : enc.encode(JSON.stringify(body));
  const head = `${method} ${path} HTTP/1.1\r\nhost: aegisbpf\r\nconnection: close\r\n` +
    (body === undefined
      ? ""
      : `content-type: application/json\r\ncontent-length: ${payload.length}\r\n`) +
    "\r\n";
  let reply: Response;
  try {
    const out = new Uint8Array(enc.encode(head).length + payload.length);
    out.set(enc.encode(head));
    out.set(payload, out.length - payload.length);
    const all = await exchange(conn, out, `${method} ${path}`, socket);
    try {
      reply = parseReply(all, socket);
    } catch (e) {
      // no whole reply came back: for a change, nobody can tell whether it was made
      if (method !== "GET") {
        const why = all.length === 0
          ? "it closed the connection without a reply"
          : `an incomplete reply: ${e instanceof Error ? e.message : e}`;
        throw outcomeUnknown(method, path, socket, why);
      }
      throw e;
    }
  } catch (e) {
    if (method !== "GET" && !(e instanceof AegisError)) {
      throw outcomeUnknown(method, path, socket, e instanceof Error ? e.message : String(e));
    }
    throw e;
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
  return await read(reply);
}

/**
 * Send one request to the daemon's control socket. Null when there is no
 * socket or nothing accepts on it (no daemon); an AegisError when the
 * daemon answered something that is not JSON.
 */
export function daemonRequest(
  method: "GET" | "POST" | "DELETE",
  path: string,
  body?: unknown,
  socket: string = aegisPaths().controlSocket,
): Promise<DaemonReply | null> {
  return withDaemon(method, path, body, async (res) => {
    const text = await res.text();
    try {
      return { status: res.status, body: JSON.parse(text) };
    } catch {
      throw new AegisError(
        "DAEMON_BAD_REPLY",
        `the daemon at ${socket} answered ${method} ${path} with HTTP ${res.status} and a ` +
          `body that is not JSON: ${JSON.stringify(text.slice(0, 200))}`,
      );
    }
  }, socket);
}
