/**
 * Our own small, strict HTTP/1.1 server over {@link ServerListener}: the
 * HTTP API (src/http/serve.ts) and the control socket use it instead of
 * Deno.serve, which has no connection cap, no header timeout and crashes the
 * process on an accept error (EMFILE). The rules are documented in
 * docs/http.md; in short:
 *
 * - The accept loop never throws: accept errors are logged (rate-limited)
 *   and retried with backoff; on EMFILE/ENFILE the oldest idle connection is
 *   closed first to free a descriptor. A closed listener ends the loop.
 * - At most `maxConnections` connections; at the cap a new connection evicts
 *   the oldest one that is idle or still reading its request head (then one
 *   reading a body, and only if none else the oldest mid-response).
 * - Timeouts: the whole request head (`headerTimeoutMs`), keep-alive idle
 *   (`idleTimeoutMs`), the whole body (`bodyTimeoutMs`), a write that makes
 *   no progress (`writeTimeoutMs`).
 * - Strict parsing: CRLF line ends, ASCII only, no obs-fold, exactly one
 *   Host (HTTP/1.1), no duplicate Content-Length, no Content-Length with
 *   Transfer-Encoding, origin-form targets. Bad heads are 400, a head over
 *   `maxHeadBytes` is 431, a body over `maxBodyBytes` is 413, chunked
 *   request bodies are 411; each of these closes the connection.
 * - One request at a time per connection (pipelined requests wait their
 *   turn); keep-alive; HEAD. Responses are sent whole with Content-Length
 *   (our handlers' answers are bounded), except `text/event-stream` bodies,
 *   which are streamed (chunked on HTTP/1.1, close on HTTP/1.0) with
 *   back-pressure: the next chunk is read only when the last one was
 *   written.
 *
 * @module
 */
import { literal, log } from "../log.ts";
import type { PeerCred, ServerConn, ServerListener } from "../net/conn.ts";

/** What the handler learns about the connection (Hono: `c.env`). */
export interface HttpEnv {
  /** kernel-reported peer credentials (unix sockets with SO_PEERCRED); null on TCP */
  peer: PeerCred | null;
  /** "127.0.0.1:41234", "[::1]:41234" or "unix" */
  remote: string;
}

/** A fetch handler, as Hono's `app.fetch(req, env)`. */
export type HttpHandler = (req: Request, env: HttpEnv) => Response | Promise<Response>;

export interface HttpdOptions {
  /** open connections at most (default 1024); at the cap the oldest idle one is evicted */
  maxConnections?: number;
  /** the whole request head must arrive within this (default 5000 ms) */
  headerTimeoutMs?: number;
  /** a keep-alive connection without a new request is closed after this (default 10000 ms) */
  idleTimeoutMs?: number;
  /** the whole request body must arrive within this (default 10000 ms) */
  bodyTimeoutMs?: number;
  /** a response write that makes no progress for this long closes the connection (default 30000 ms) */
  writeTimeoutMs?: number;
  /** request line + headers, bytes (default 16 KiB; over it: 431) */
  maxHeadBytes?: number;
  /** header fields at most (default 100; over it: 431) */
  maxHeaders?: number;
  /** request body, bytes (default 1 MiB; over it: 413) */
  maxBodyBytes?: number;
  /**
   * A handler threw or a response body stream failed. Return the response
   * to send (when nothing was sent yet); the default logs and answers 500.
   */
  onError?: (e: unknown) => Response;
  /** the name in log lines (default "http") */
  name?: string;
}

/** Counters since start. */
export interface HttpdStats {
  connections: number;
  max_connections: number;
  accepted_total: number;
  requests_total: number;
  /** connections closed to make room at the cap, or to free a descriptor on EMFILE */
  evicted_total: number;
  timeouts: { head: number; idle: number; body: number; write: number };
  /** requests refused by the parser, by status (400, 411, 413, 417, 431, 501) */
  refused: Record<string, number>;
  accept_errors: number;
}

export interface HttpServer {
  /** resolves when the accept loop ended and every connection is closed */
  finished: Promise<void>;
  /**
   * Stop accepting, close idle connections, wait up to timeoutMs (default
   * 5000) for responses in flight, then close the rest. Safe to call twice.
   */
  close(timeoutMs?: number): Promise<void>;
  stats(): HttpdStats;
}

type State = "head" | "idle" | "body" | "busy";

interface Conn {
  readonly conn: ServerConn;
  state: State;
  /** when the connection entered its state (performance.now) */
  since: number;
  /** when the write in progress started; null when not writing */
  writeSince: number | null;
  /** bytes read and not yet consumed */
  pending: Uint8Array;
  readBuf: Uint8Array;
  closed: boolean;
}

interface Head {
  method: string;
  target: string;
  minor: 0 | 1;
  headers: [string, string][];
  host: string | null;
  contentLength: number;
  keepAlive: boolean;
  expectContinue: boolean;
}

/** A request the parser refuses: the status to answer, then close. */
export class Refusal extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

const enc = new TextEncoder();
const dec = new TextDecoder();
const CRLFCRLF = [13, 10, 13, 10];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([\x21-\x7e]+) HTTP\/1\.([01])$/;
const FIELD_VALUE = /^[\x20-\x7e\t]*$/;
const HOST_VALUE = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=%]*|\[[0-9A-Fa-f:.]+\])(?::\d{0,5})?$/;
const EVENT_STREAM = /^text\/event-stream\b/i;
const FORBIDDEN_METHOD = /^(connect|trace|track)$/i;
const READ_BUF = 4096;
const ACCEPT_LOG_EVERY_MS = 5000;
const REASONS: Record<number, string> = {
  100: "Continue",
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  411: "Length Required",
  413: "Content Too Large",
  417: "Expectation Failed",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  503: "Service Unavailable",
};

function positive(name: string, v: number | undefined, dflt: number): number {
  const n = v ?? dflt;
  if (!Number.isSafeInteger(n) || n <= 0) {
    throw new TypeError(`httpd option ${name} must be a positive integer, got ${v}`);
  }
  return n;
}

function indexOfSeq(hay: Uint8Array, needle: number[], from: number): number {
  outer: for (let i = Math.max(0, from); i <= hay.length - needle.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/**
 * a followed by b. Grows a's buffer by doubling, so a head or body that
 * arrives a byte at a time costs O(n) copying, not O(n²).
 */
function append(a: Uint8Array, b: Uint8Array): Uint8Array {
  const need = a.length + b.length;
  if (a.byteOffset + need <= a.buffer.byteLength) {
    const out = new Uint8Array(a.buffer, a.byteOffset, need);
    out.set(b, a.length);
    return out;
  }
  const grown = new Uint8Array(Math.max(need, a.length * 2, 512));
  grown.set(a);
  grown.set(b, a.length);
  return grown.subarray(0, need);
}

/** "http://authority/path?query": authority (no userinfo), then the rest (may be empty). */
const ABSOLUTE_FORM = /^http:\/\/([^/?#@\s]+)([/?][^#\s]*)?$/i;

/** Parse a request head (without the final CRLFCRLF). Throws Refusal. */
export function parseHead(bytes: Uint8Array, maxHeaders = 100): Head {
  for (const b of bytes) {
    if (b >= 0x80 || b === 0) throw new Refusal(400, "request head has a non-ASCII or NUL byte");
  }
  const text = dec.decode(bytes);
  const lines = text.split("\r\n");
  for (const l of lines) {
    if (l.includes("\r") || l.includes("\n")) {
      throw new Refusal(400, "request head has a bare CR or LF (lines end with CRLF)");
    }
  }
  const m = REQUEST_LINE.exec(lines[0]);
  if (!m) throw new Refusal(400, "malformed request line");
  const [, method, rawTarget, minorText] = m;
  // absolute-form ("http://host/path"), which HTTP/1.1 servers must accept,
  // is reduced to origin-form; its authority must equal the Host header
  // (checked below), so the Host check of a loopback listener sees the name
  // the client really asked for
  let target = rawTarget;
  let authority: string | null = null;
  const abs = ABSOLUTE_FORM.exec(rawTarget);
  if (abs) {
    authority = abs[1];
    const rest = abs[2] ?? "";
    target = rest.startsWith("/") ? rest : "/" + rest;
  }
  if (!target.startsWith("/")) {
    throw new Refusal(400, "request target must be a path (origin-form) or http://host/path");
  }
  const minor = minorText === "1" ? 1 : 0;
  if (lines.length - 1 > maxHeaders) {
    throw new Refusal(431, `more than ${maxHeaders} header fields`);
  }
  const headers: [string, string][] = [];
  let host: string | null = null;
  let cl: string | null = null;
  let te: string | null = null;
  let connection = "";
  let expect: string | null = null;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith(" ") || line.startsWith("\t")) {
      throw new Refusal(400, "obsolete line folding in a header field");
    }
    const colon = line.indexOf(":");
    if (colon <= 0) throw new Refusal(400, `malformed header field on line ${i + 1}`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new Refusal(400, `malformed header field name on line ${i + 1}`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    if (!FIELD_VALUE.test(value)) {
      throw new Refusal(400, `control character in header field ${name}`);
    }
    const lower = name.toLowerCase();
    if (lower === "host") {
      if (host !== null) throw new Refusal(400, "more than one Host header");
      if (!HOST_VALUE.test(value)) throw new Refusal(400, "malformed Host header");
      host = value;
    } else if (lower === "content-length") {
      if (cl !== null) throw new Refusal(400, "more than one Content-Length header");
      if (!/^\d{1,15}$/.test(value)) throw new Refusal(400, "malformed Content-Length");
      cl = value;
    } else if (lower === "transfer-encoding") {
      te = te === null ? value : `${te}, ${value}`;
    } else if (lower === "connection") {
      connection += `,${value.toLowerCase()}`;
    } else if (lower === "expect") {
      expect = value.toLowerCase();
    }
    headers.push([name, value]);
  }
  if (minor === 1 && host === null) throw new Refusal(400, "HTTP/1.1 request without Host");
  if (authority !== null) {
    if (host === null) host = authority;
    else if (host.toLowerCase() !== authority.toLowerCase()) {
      throw new Refusal(400, "the request target's host differs from the Host header");
    }
  }
  if (te !== null) {
    if (cl !== null) throw new Refusal(400, "both Content-Length and Transfer-Encoding");
    if (minor === 0) throw new Refusal(400, "Transfer-Encoding in an HTTP/1.0 request");
    if (te.toLowerCase() === "chunked") {
      throw new Refusal(411, "chunked request bodies are not accepted; send Content-Length");
    }
    throw new Refusal(501, "unsupported Transfer-Encoding");
  }
  if (expect !== null && expect !== "100-continue") {
    throw new Refusal(417, "unsupported Expect");
  }
  const tokens = connection.split(",").map((s) => s.trim());
  const keepAlive = minor === 1 ? !tokens.includes("close") : tokens.includes("keep-alive");
  return {
    method,
    target,
    minor,
    headers,
    host,
    contentLength: cl === null ? 0 : Number(cl),
    keepAlive,
    expectContinue: expect === "100-continue",
  };
}

function defaultError(name: string) {
  const logger = log(name);
  return (e: unknown): Response => {
    logger.error(literal(`HTTP request failed: ${e instanceof Error ? e.stack : e}`));
    return new Response(JSON.stringify({ error: "internal error", code: "INTERNAL" }), {
      status: 500,
      headers: { "content-type": "application/json; charset=utf-8" },
    });
  };
}

function refusalResponse(r: Refusal): Response {
  return new Response(JSON.stringify({ error: r.message, code: "BAD_REQUEST" }) + "\n", {
    status: r.status,
    headers: { "content-type": "application/json; charset=utf-8" },
  });
}

/** Is this accept error the process or system running out of descriptors? */
function isFdExhaustion(e: unknown): boolean {
  const s = e instanceof Error ? `${(e as { code?: string }).code ?? ""} ${e.message}` : String(e);
  return /EMFILE|ENFILE|os error 2[34]\b|too many open files/i.test(s);
}

/** Serve HTTP/1.1 on `listener` with `handler` until close(). */
export function serveHttp(
  listener: ServerListener,
  handler: HttpHandler,
  opts: HttpdOptions = {},
): HttpServer {
  const o = {
    maxConnections: positive("maxConnections", opts.maxConnections, 1024),
    headerTimeoutMs: positive("headerTimeoutMs", opts.headerTimeoutMs, 5000),
    idleTimeoutMs: positive("idleTimeoutMs", opts.idleTimeoutMs, 10_000),
    bodyTimeoutMs: positive("bodyTimeoutMs", opts.bodyTimeoutMs, 10_000),
    writeTimeoutMs: positive("writeTimeoutMs", opts.writeTimeoutMs, 30_000),
    maxHeadBytes: positive("maxHeadBytes", opts.maxHeadBytes, 16 << 10),
    maxHeaders: positive("maxHeaders", opts.maxHeaders, 100),
    maxBodyBytes: positive("maxBodyBytes", opts.maxBodyBytes, 1 << 20),
  };
  const name = opts.name ?? "http";
  const logger = log(name);
  const onError = opts.onError ?? defaultError(name);
  const sets: Record<State, Set<Conn>> = {
    head: new Set(),
    idle: new Set(),
    body: new Set(),
    busy: new Set(),
  };
  const stats: HttpdStats = {
    connections: 0,
    max_connections: o.maxConnections,
    accepted_total: 0,
    requests_total: 0,
    evicted_total: 0,
    timeouts: { head: 0, idle: 0, body: 0, write: 0 },
    refused: {},
    accept_errors: 0,
  };
  let closing = false;
  let wakeBackoff: (() => void) | null = null;
  let drainedWaiters: (() => void)[] = [];
  let lastAcceptLog = -Infinity;
  let suppressedAcceptErrors = 0;

  const count = () => sets.head.size + sets.idle.size + sets.body.size + sets.busy.size;

  function setState(c: Conn, s: State): void {
    sets[c.state].delete(c);
    c.state = s;
    c.since = performance.now();
    sets[s].add(c);
  }

  function drop(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    sets[c.state].delete(c);
    try {
      c.conn.close();
    } catch { /* already closed */ }
    stats.connections = count();
    if (stats.connections === 0) sweepOff();
    if (stats.connections === 0 && drainedWaiters.length > 0) {
      const ws = drainedWaiters;
      drainedWaiters = [];
      for (const w of ws) w();
    }
  }

  function first(s: Set<Conn>): Conn | undefined {
    for (const c of s) return c;
    return undefined;
  }

  /** Close the connection that can best be spared; false when there is none. */
  function evictOne(): boolean {
    const i = first(sets.idle);
    const h = first(sets.head);
    const victim = i && h ? (i.since <= h.since ? i : h) : i ?? h ?? first(sets.body) ??
      first(sets.busy);
    if (!victim) return false;
    stats.evicted_total++;
    drop(victim);
    return true;
  }

  // one timer for every deadline: connections in a state are in the order they entered it
  const tickMs = Math.max(
    10,
    Math.min(250, Math.floor(Math.min(o.headerTimeoutMs, o.idleTimeoutMs, o.bodyTimeoutMs) / 4)),
  );
  const sweep = () => {
    const now = performance.now();
    const expire = (s: Set<Conn>, limit: number, key: "head" | "idle" | "body") => {
      for (const c of [...s]) {
        if (now - c.since < limit) break;
        stats.timeouts[key]++;
        drop(c);
      }
    };
    expire(sets.head, o.headerTimeoutMs, "head");
    expire(sets.idle, o.idleTimeoutMs, "idle");
    expire(sets.body, o.bodyTimeoutMs, "body");
    for (const c of [...sets.busy]) {
      if (c.writeSince !== null && now - c.writeSince >= o.writeTimeoutMs) {
        stats.timeouts.write++;
        drop(c);
      }
    }
  };
  // the sweep runs only while there are connections: an idle server sets no timer
  let timer: ReturnType<typeof setInterval> | undefined;
  const sweepOn = () => {
    if (timer !== undefined) return;
    const t = setInterval(sweep, tickMs);
    Deno.unrefTimer(t);
    timer = t;
  };
  function sweepOff(): void {
    if (timer === undefined) return;
    clearInterval(timer);
    timer = undefined;
  }

  async function writeAll(c: Conn, bytes: Uint8Array): Promise<void> {
    c.writeSince = performance.now();
    let off = 0;
    while (off < bytes.length) {
      const n = await c.conn.write(off === 0 ? bytes : bytes.subarray(off));
      off += n;
      c.writeSince = performance.now();
    }
    c.writeSince = null;
  }

  /** Read more bytes into c.pending; false at end of stream. */
  async function fill(c: Conn): Promise<boolean> {
    const n = await c.conn.read(c.readBuf);
    if (n === null || n === 0) return false;
    c.pending = append(c.pending, c.readBuf.subarray(0, n));
    return true;
  }

  /** The next request head, or null when the client closed cleanly between requests. */
  async function readHead(c: Conn): Promise<Head | null> {
    let scanned = 0;
    for (;;) {
      const end = indexOfSeq(c.pending, CRLFCRLF, scanned - 3);
      if (end >= 0) {
        if (end + 4 > o.maxHeadBytes) throw new Refusal(431, "request head too large");
        const head = parseHead(c.pending.subarray(0, end), o.maxHeaders);
        c.pending = c.pending.slice(end + 4);
        return head;
      }
      if (c.pending.length >= o.maxHeadBytes) throw new Refusal(431, "request head too large");
      for (let i = Math.max(1, scanned); i < c.pending.length; i++) {
        if (c.pending[i] === 10 && c.pending[i - 1] !== 13 || c.pending[0] === 10) {
          throw new Refusal(400, "request head has a bare LF (lines end with CRLF)");
        }
      }
      scanned = c.pending.length;
      if (!(await fill(c))) {
        if (c.pending.length === 0) return null;
        throw new Refusal(400, "connection closed in the middle of a request head");
      }
      if (c.state === "idle") setState(c, "head");
    }
  }

  async function readBody(c: Conn, head: Head): Promise<Uint8Array> {
    const want = head.contentLength;
    if (want > o.maxBodyBytes) {
      throw new Refusal(413, `request body over ${o.maxBodyBytes} bytes`);
    }
    if (want === 0) return new Uint8Array(0);
    if (head.expectContinue && c.pending.length < want) {
      await writeAll(c, enc.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    }
    setState(c, "body");
    while (c.pending.length < want) {
      if (!(await fill(c))) throw new Refusal(400, "connection closed in the middle of a body");
    }
    const body = c.pending.slice(0, want);
    c.pending = c.pending.slice(want);
    return body;
  }

  function buildRequest(head: Head, body: Uint8Array): Request {
    if (FORBIDDEN_METHOD.test(head.method)) {
      throw new Refusal(501, `method ${head.method} is not supported`);
    }
    const hasBody = body.length > 0 && head.method !== "GET" && head.method !== "HEAD";
    try {
      return new Request(`http://${head.host ?? "localhost"}${head.target}`, {
        method: head.method,
        headers: head.headers,
        body: hasBody ? body as Uint8Array<ArrayBuffer> : undefined,
      });
    } catch {
      throw new Refusal(400, "request target and Host do not form a URL");
    }
  }

  function headBytes(
    status: number,
    res: Response | null,
    extra: string,
    keepAlive: boolean,
  ): string {
    let s = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\n`;
    if (res) {
      for (const [k, v] of res.headers) {
        if (
          k === "connection" || k === "keep-alive" || k === "transfer-encoding" ||
          k === "content-length"
        ) continue;
        s += `${k}: ${v}\r\n`;
      }
    }
    s += extra;
    s += keepAlive ? "" : "connection: close\r\n";
    return s + "\r\n";
  }

  /** Write the response; true when the connection can carry another request. */
  async function respond(
    c: Conn,
    method: string,
    minor: 0 | 1,
    res: Response,
    keepAlive: boolean,
  ): Promise<boolean> {
    const status = res.status;
    const noBody = status < 200 || status === 204 || status === 304;
    const isHead = method === "HEAD";
    if (noBody || res.body === null) {
      await res.body?.cancel().catch(() => {});
      // HEAD: the handler may state the length GET would have (Hono drops the body)
      const stated = res.headers.get("content-length");
      const cl = noBody
        ? ""
        : isHead
        ? (stated !== null && /^\d{1,15}$/.test(stated) ? `content-length: ${stated}\r\n` : "")
        : "content-length: 0\r\n";
      await writeAll(c, enc.encode(headBytes(status, res, cl, keepAlive)));
      return keepAlive;
    }
    if (!EVENT_STREAM.test(res.headers.get("content-type") ?? "")) {
      // our handlers' answers are bounded: send them whole, with Content-Length
      let body: Uint8Array;
      try {
        body = await res.bytes();
      } catch (e) {
        return await respond(c, method, minor, onError(e), false);
      }
      const h = enc.encode(headBytes(status, res, `content-length: ${body.length}\r\n`, keepAlive));
      if (isHead || body.length === 0) {
        await writeAll(c, h);
      } else {
        const out = new Uint8Array(h.length + body.length);
        out.set(h);
        out.set(body, h.length);
        await writeAll(c, out);
      }
      return keepAlive;
    }
    const reader = res.body.getReader();
    try {
      if (isHead) {
        await reader.cancel().catch(() => {});
        await writeAll(c, enc.encode(headBytes(status, res, "", keepAlive)));
        return keepAlive;
      }
      // streamed: chunked on HTTP/1.1, delimited by close on HTTP/1.0; the
      // next chunk is read only once the last one is written (back-pressure)
      const chunked = minor === 1;
      if (!chunked) keepAlive = false;
      const te = chunked ? "transfer-encoding: chunked\r\n" : "";
      await writeAll(c, enc.encode(headBytes(status, res, te, keepAlive)));
      for (;;) {
        let r: ReadableStreamReadResult<Uint8Array>;
        try {
          r = await reader.read();
        } catch (e) {
          onError(e); // the body failed mid-response: log it, cut the connection
          return false;
        }
        if (r.done) break;
        const ch = r.value;
        if (ch.length === 0) continue;
        if (!chunked) {
          await writeAll(c, ch);
          continue;
        }
        const prefix = enc.encode(`${ch.length.toString(16)}\r\n`);
        const out = new Uint8Array(prefix.length + ch.length + 2);
        out.set(prefix);
        out.set(ch, prefix.length);
        out.set([13, 10], prefix.length + ch.length);
        await writeAll(c, out);
      }
      if (chunked) await writeAll(c, enc.encode("0\r\n\r\n"));
      return keepAlive;
    } catch (e) {
      // the write failed: the client is gone
      await reader.cancel(e).catch(() => {});
      throw e;
    }
  }

  async function serveConn(c: Conn): Promise<void> {
    try {
      for (;;) {
        let head: Head | null;
        let req: Request;
        try {
          head = await readHead(c);
          if (head === null) return;
          req = buildRequest(head, await readBody(c, head));
        } catch (e) {
          if (!(e instanceof Refusal) || c.closed) return;
          stats.refused[e.status] = (stats.refused[e.status] ?? 0) + 1;
          setState(c, "busy");
          await respond(c, "GET", 1, refusalResponse(e), false).catch(() => {});
          return;
        }
        stats.requests_total++;
        setState(c, "busy");
        let res: Response;
        try {
          res = await handler(req, { peer: c.conn.peer, remote: c.conn.remote });
          if (!(res instanceof Response)) {
            throw new TypeError("the handler did not return a Response");
          }
        } catch (e) {
          res = onError(e);
        }
        if (c.closed) {
          await res.body?.cancel().catch(() => {});
          return;
        }
        const again = await respond(c, head.method, head.minor, res, head.keepAlive && !closing);
        if (!again || closing || c.closed) return;
        setState(c, c.pending.length > 0 ? "head" : "idle");
      }
    } catch {
      // read/write on a closed or reset connection: nothing to answer
    } finally {
      drop(c);
    }
  }

  function logAcceptError(e: unknown): void {
    const now = performance.now();
    if (now - lastAcceptLog < ACCEPT_LOG_EVERY_MS) {
      suppressedAcceptErrors++;
      return;
    }
    const more = suppressedAcceptErrors > 0
      ? ` (${suppressedAcceptErrors} more since the last report)`
      : "";
    suppressedAcceptErrors = 0;
    lastAcceptLog = now;
    logger.warn(
      literal(
        `${name}: accept failed, retrying with backoff: ${
          e instanceof Error ? e.message : String(e)
        }${more}; ${count()} connections open`,
      ),
    );
  }

  function isClosedError(e: unknown): boolean {
    return e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted;
  }

  async function acceptLoop(): Promise<void> {
    let backoff = 0;
    let sinceYield = 0;
    while (!closing) {
      let conn: ServerConn;
      try {
        conn = await listener.accept();
        backoff = 0;
      } catch (e) {
        if (closing || isClosedError(e)) break;
        stats.accept_errors++;
        logAcceptError(e);
        // free a descriptor for the next accept: an idle connection can best be spared;
        // then retry after one turn of the event loop (the close completes there)
        const freed = isFdExhaustion(e) && (sets.idle.size > 0 || sets.head.size > 0) &&
          evictOne();
        backoff = freed ? 0 : Math.min(1000, Math.max(5, backoff * 2));
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, backoff);
          wakeBackoff = () => {
            clearTimeout(t);
            resolve();
          };
        });
        wakeBackoff = null;
        continue;
      }
      if (closing) {
        try {
          conn.close();
        } catch { /* gone */ }
        break;
      }
      // accept() completes without a turn of the event loop while connections
      // are queued: give the reads of open connections their turn, or a flood
      // would evict every connection before its request is read
      if (++sinceYield >= 64) {
        sinceYield = 0;
        await new Promise((r) => setTimeout(r, 0));
        if (closing) {
          try {
            conn.close();
          } catch { /* gone */ }
          break;
        }
      }
      while (count() >= o.maxConnections && evictOne()) { /* make room */ }
      stats.accepted_total++;
      const c: Conn = {
        conn,
        state: "head",
        since: performance.now(),
        writeSince: null,
        pending: new Uint8Array(0),
        readBuf: new Uint8Array(READ_BUF),
        closed: false,
      };
      sets.head.add(c);
      stats.connections = count();
      sweepOn();
      void serveConn(c);
    }
  }

  const loopDone = acceptLoop().catch((e) => {
    logger.error(literal(`${name}: accept loop ended: ${e instanceof Error ? e.stack : e}`));
  });
  const finished = (async () => {
    await loopDone;
    if (count() > 0) await new Promise<void>((r) => drainedWaiters.push(r));
    sweepOff();
  })();

  let closingP: Promise<void> | null = null;
  const close = (timeoutMs = 5000): Promise<void> => {
    closingP ??= (async () => {
      closing = true;
      try {
        listener.close();
      } catch { /* closed */ }
      wakeBackoff?.();
      for (const s of [sets.head, sets.idle, sets.body]) for (const c of [...s]) drop(c);
      if (count() > 0) {
        let t: ReturnType<typeof setTimeout> | undefined;
        const late = await Promise.race([
          new Promise<boolean>((r) => drainedWaiters.push(() => r(false))),
          new Promise<boolean>((r) => t = setTimeout(() => r(true), timeoutMs)),
        ]);
        clearTimeout(t);
        if (late) {
          logger.warn(
            literal(`${name}: ${count()} responses still running ${timeoutMs} ms after close`),
          );
          for (const c of [...sets.busy]) drop(c);
        }
      }
      await finished;
    })();
    return closingP;
  };

  return {
    finished,
    close,
    stats: () => ({
      ...stats,
      connections: count(),
      timeouts: { ...stats.timeouts },
      refused: { ...stats.refused },
    }),
  };
}

// ---------------------------------------------------------------- adapters

function netRemote(a: Deno.NetAddr): string {
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

/** A TCP listener (Deno.listen): peer null, remote "addr:port". Throws as Deno.listen does. */
export function listenTcp(
  addr: { hostname: string; port: number },
): ServerListener & { addr: Deno.NetAddr } {
  const l = Deno.listen({ hostname: addr.hostname, port: addr.port, transport: "tcp" });
  return {
    addr: l.addr,
    async accept(): Promise<ServerConn> {
      const c = await l.accept();
      try {
        c.setNoDelay(true);
      } catch { /* not fatal */ }
      return wrapConn(c, netRemote(c.remoteAddr));
    },
    close() {
      try {
        l.close();
      } catch { /* closed */ }
    },
  };
}

/** A plain unix-socket listener (no peer credentials: peer null), for tests. */
export function listenUnixPlain(path: string): ServerListener {
  const l = Deno.listen({ path, transport: "unix" });
  return {
    async accept(): Promise<ServerConn> {
      return wrapConn(await l.accept(), "unix");
    },
    close() {
      try {
        l.close();
      } catch { /* closed */ }
    },
  };
}

function wrapConn(c: Deno.Conn, remote: string): ServerConn {
  let closed = false;
  return {
    peer: null,
    remote,
    read: (buf) => c.read(buf),
    write: (buf) => c.write(buf),
    close() {
      if (closed) return;
      closed = true;
      try {
        c.close();
      } catch { /* closed */ }
    },
  };
}
