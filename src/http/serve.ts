/**
 * Binding the HTTP API: `--http-listen=ADDR:PORT|off` parsing, the
 * loopback-only rule, and the listener itself (our own HTTP/1.1 server,
 * src/http/httpd.ts, with its connection cap and timeouts: docs/http.md).
 *
 * - Default `127.0.0.1:80`, so `curl localhost/health?require_enforce=1`
 *   works on the node. A non-loopback address needs the caller's explicit
 *   consent (`allowRemote`, the `--http-allow-remote` flag).
 * - On a loopback listener the `Host` header must name a loopback host too
 *   (localhost, 127.0.0.0/8, ::1): a web page cannot use DNS rebinding to
 *   read the agent's posture through a browser on the node.
 * - A port in use, a low port without privilege or an address that is not
 *   on this host is an AegisError naming the address, the flag and what
 *   to do.
 * - `GET /events` runs with the caller's uid (SSE quotas, docs/http.md): for
 *   a loopback client it is read from the kernel's socket table
 *   (src/http/tcp_owner.ts), only for that route.
 *
 * @module
 */
import type { Hono } from "hono";
import { AegisError, UsageError } from "../errors.ts";
import { isLoopbackAddr, tryParseIpAddr } from "../util/ip.ts";
import { literal, log } from "../log.ts";
import { type HttpdOptions, type HttpdStats, type HttpEnv, listenTcp, serveHttp } from "./httpd.ts";
import { SseClientDropped } from "./sse.ts";
import { tcpPeerUid } from "./tcp_owner.ts";

export interface ListenAddr {
  hostname: string;
  port: number;
}

/** The flag that names the listen address. */
export const HTTP_LISTEN_FLAG = "--http-listen";
/** The flag that allows a non-loopback listen address. */
export const HTTP_ALLOW_REMOTE_FLAG = "--http-allow-remote";
/** The default listen address. */
export const DEFAULT_HTTP_LISTEN = "127.0.0.1:80";

const DNS_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

function usage(text: string, why: string, flag: string): AegisError {
  return new UsageError(
    `${flag}=${JSON.stringify(text)} is not valid: ${why}. ` +
      `Use ADDR:PORT (127.0.0.1:80, [::1]:8080, localhost:9000) or off`,
  );
}

/**
 * Parse `--http-listen`: "off" → null; "127.0.0.1:80", "[::1]:8080",
 * "localhost:9000" → {hostname, port} (IPv6 without brackets, as Deno.serve
 * wants it). Port 0 asks for an ephemeral port (tests). Anything else is an
 * AegisError USAGE naming the flag (`flag`, default --http-listen) and the value.
 */
export function parseListen(text: string, flag: string = HTTP_LISTEN_FLAG): ListenAddr | null {
  const t = text.trim();
  if (t.toLowerCase() === "off") return null;
  if (t === "") throw usage(text, "it is empty", flag);
  let host: string;
  let portText: string;
  if (t.startsWith("[")) {
    const close = t.indexOf("]");
    if (close < 0) throw usage(text, "an IPv6 address in [ ] has no closing ]", flag);
    host = t.slice(1, close);
    if (t[close + 1] !== ":") throw usage(text, "the port is missing after ]", flag);
    portText = t.slice(close + 2);
    if (!tryParseIpAddr(host, 6)) {
      throw usage(text, `${JSON.stringify(host)} is not an IPv6 address`, flag);
    }
  } else {
    const colon = t.lastIndexOf(":");
    if (colon < 0) throw usage(text, "the port is missing (ADDR:PORT)", flag);
    host = t.slice(0, colon);
    portText = t.slice(colon + 1);
    if (host.includes(":")) throw usage(text, "an IPv6 address must be written in [ ]", flag);
    if (host === "") throw usage(text, "the address is missing (ADDR:PORT)", flag);
    const isName = !/^[\d.]+$/.test(host);
    if (isName) {
      if (host.length > 253 || !host.split(".").every((l) => DNS_LABEL.test(l))) {
        throw usage(text, `${JSON.stringify(host)} is not a host name or IPv4 address`, flag);
      }
    } else if (!tryParseIpAddr(host, 4)) {
      throw usage(text, `${JSON.stringify(host)} is not an IPv4 address`, flag);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw usage(text, `the port ${JSON.stringify(portText)} is not a number from 0 to 65535`, flag);
  }
  return { hostname: host.toLowerCase(), port: Number(portText) };
}

/** Loopback only: "localhost", 127.0.0.0/8, ::1 (also as ::ffff:127.x.y.z). */
export function isLoopback(hostname: string): boolean {
  let h = hostname.toLowerCase();
  if (h.startsWith("[") && h.endsWith("]")) h = h.slice(1, -1);
  if (h === "localhost" || h === "localhost.") return true;
  const ip = tryParseIpAddr(h);
  return ip !== null && isLoopbackAddr(ip);
}

/** The hostname part of a Host header ("[::1]:80" → "::1", "localhost:8080" → "localhost"). */
export function hostOfHeader(host: string): string {
  const h = host.trim();
  if (h.startsWith("[")) {
    const close = h.indexOf("]");
    return close < 0 ? h : h.slice(1, close);
  }
  const colon = h.lastIndexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

export interface StartOptions {
  /** stop serving when aborted (same as close()) */
  signal?: AbortSignal;
  /** allow a non-loopback address (the operator passed --http-allow-remote) */
  allowRemote?: boolean;
  /**
   * Called first by close(): end the long-lived responses (SseHub.close),
   * which the graceful shutdown would otherwise wait for.
   */
  beforeClose?: () => void;
  /** how long close() waits for open requests (default 5000 ms) */
  closeTimeoutMs?: number;
  /** connection cap, timeouts and size limits of the server (defaults: docs/http.md) */
  limits?: Omit<HttpdOptions, "onError" | "name">;
  /** the flag that named the address, for error messages (default --http-listen) */
  flag?: string;
  /** what the listener is, for log lines (default "HTTP API") */
  label?: string;
  /** the uid of a loopback client's socket (default: from /proc/net/tcp*; tests replace it) */
  peerUid?: (remote: string, local: string) => Promise<number | null>;
}

export interface HttpServerHandle {
  /** the bound address (the real port when 0 was asked) */
  addr: ListenAddr;
  /** graceful shutdown, bounded by closeTimeoutMs; safe to call twice */
  close(): Promise<void>;
  /** connection counters of the server (for /metrics, tests) */
  stats(): HttpdStats;
}

/** The AegisError for a failed bind: address, flag, cause and what to do. */
export function describeListenError(
  listen: ListenAddr,
  e: unknown,
  flagName: string = HTTP_LISTEN_FLAG,
  label = "the HTTP API",
): AegisError {
  const where = listen.hostname.includes(":")
    ? `[${listen.hostname}]:${listen.port}`
    : `${listen.hostname}:${listen.port}`;
  const flag = `${flagName}=${where}`;
  const choose = `choose another address with ${flagName}=ADDR:PORT, ` +
    `or disable ${label} with ${flagName}=off`;
  let why: string;
  if (e instanceof Deno.errors.AddrInUse) {
    why =
      `the address is already in use by another process (see: ss -ltnp 'sport = :${listen.port}'); ` +
      `stop that process or ${choose}`;
  } else if (e instanceof Deno.errors.PermissionDenied) {
    why = listen.port < 1024
      ? `ports below 1024 need root or CAP_NET_BIND_SERVICE; run the agent as root or ${choose}`
      : `permission denied; ${choose}`;
  } else if (e instanceof Deno.errors.NotCapable) {
    why = `the Deno runtime was not granted network access (--allow-net); this is a build problem`;
  } else if (e instanceof Deno.errors.AddrNotAvailable) {
    why = `${listen.hostname} is not an address of this host; ${choose}`;
  } else {
    why = `${e instanceof Error ? e.message : String(e)}; ${choose}`;
  }
  return new AegisError(
    "HTTP_LISTEN_FAILED",
    `cannot serve ${label} on ${where} (${flag}): ${why}`,
    { cause: e },
  );
}

const HOST_REFUSED_BODY = JSON.stringify({
  error: "the Host header does not name this loopback listener",
  code: "HOST_NOT_ALLOWED",
});

/**
 * Serve `app` on `listen`. Refuses a non-loopback address unless
 * `allowRemote`; bind failures are AegisError HTTP_LISTEN_FAILED naming the
 * address and the flag.
 */
export function startHttpServer(
  app: Hono,
  listen: ListenAddr,
  opts: StartOptions = {},
): Promise<HttpServerHandle> {
  const logger = log("http");
  if (!opts.allowRemote && !isLoopback(listen.hostname)) {
    return Promise.reject(
      new AegisError(
        "HTTP_LISTEN_NOT_LOOPBACK",
        `refusing to serve the HTTP API on ${listen.hostname}:${listen.port} ` +
          `(${HTTP_LISTEN_FLAG}): it is not a loopback address and the API shows the node's ` +
          `security posture to anyone who can reach it. Use ${HTTP_LISTEN_FLAG}=127.0.0.1:PORT, ` +
          `or pass ${HTTP_ALLOW_REMOTE_FLAG} as well if it must be reachable from the network`,
      ),
    );
  }
  const checkHost = isLoopback(listen.hostname);
  let listener: ReturnType<typeof listenTcp>;
  try {
    listener = listenTcp(listen);
  } catch (e) {
    return Promise.reject(
      describeListenError(listen, e, opts.flag, opts.label ? `the ${opts.label}` : undefined),
    );
  }
  const addr = { hostname: listener.addr.hostname, port: listener.addr.port };
  const local = addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
  const peerUid = opts.peerUid ?? tcpPeerUid;
  const handler = async (req: Request, env: HttpEnv): Promise<Response> => {
    if (checkHost) {
      const host = req.headers.get("host");
      if (host !== null && !isLoopback(hostOfHeader(host))) {
        return new Response(HOST_REFUSED_BODY, {
          status: 403,
          headers: {
            "content-type": "application/json; charset=utf-8",
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
          },
        });
      }
    }
    if (req.method === "GET" && new URL(req.url).pathname === "/events") {
      // a subscription: who asks decides which quota applies (docs/http.md)
      let uid: number | null = null;
      try {
        uid = await peerUid(env.remote, local);
      } catch (e) {
        logger.warn(literal(`cannot read the owner of ${env.remote}: ${e}`));
      }
      return await app.fetch(req, { ...env, subscriber: { uid } });
    }
    return await app.fetch(req, env);
  };
  const srv = serveHttp(listener, handler, {
    maxBodyBytes: 64 << 10, // a read-only API: no route takes a body (docs/http.md)
    ...opts.limits,
    name: "http",
    onError: (e) => {
      // a cut-off /events subscriber ends its stream with this error (counted by SseHub)
      if (!(e instanceof SseClientDropped)) {
        logger.error(literal(`HTTP request failed: ${e instanceof Error ? e.stack : e}`));
      }
      return new Response(JSON.stringify({ error: "internal error", code: "INTERNAL" }), {
        status: 500,
        headers: { "content-type": "application/json; charset=utf-8" },
      });
    },
  });
  logger.info(literal(`${opts.label ?? "HTTP API"} listening on ${addr.hostname}:${addr.port}`), {
    ...addr,
  });
  let closing: Promise<void> | null = null;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      opts.beforeClose?.();
      await srv.close(opts.closeTimeoutMs ?? 5000);
    })();
    return closing;
  };
  if (opts.signal) {
    if (opts.signal.aborted) void close();
    else opts.signal.addEventListener("abort", () => void close(), { once: true });
  }
  return Promise.resolve({ addr, close, stats: () => srv.stats() });
}
