/**
 * The daemon's read-only HTTP API (docs/posture.md, docs/telemetry.md, docs/http.md) as a Hono app. Pure
 * wiring: every answer comes from an injected dependency, and the app never
 * listens (serve.ts binds it). Mutating control is not here: it lives only
 * on the root-only unix socket.
 *
 * | route                             | answer                                           |
 * | --------------------------------- | ------------------------------------------------ |
 * | GET /health[?require_enforce=1]   | deps.health(): 200 or 503 with its body          |
 * | GET /capabilities                 | the current report, 503 until it exists          |
 * | GET /state                        | runtime state, transitions, emergency status     |
 * | GET /metrics                      | Prometheus text 0.0.4                            |
 * | GET /events                       | server-sent events (SseHub), 503 over the limit  |
 *
 * HEAD works wherever GET does; any other method is 405 with `Allow`; an
 * unknown path is 404; an unknown query parameter or a bad value is 400;
 * errors are JSON `{error, code}`; a failing dependency is 500
 * `{"error":"internal error","code":"INTERNAL"}`, its details only in the log.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import { AegisError } from "../errors.ts";
import { literal, log } from "../log.ts";
import type { SseHub, SubscriberId } from "./sse.ts";

/** What the API reads from the daemon. Each call is made per request. */
export interface HttpDeps {
  /** health answer for /health (require_enforce: 200 only when really enforcing) */
  health(requireEnforce: boolean): { status: 200 | 503; body: unknown };
  /** the current capabilities report; null while it has not been built yet (→ 503) */
  capabilities(): unknown | null;
  /** runtime state, transitions, emergency status */
  state(): unknown;
  /** Prometheus text exposition */
  metrics(detailed: boolean): Promise<string>;
  /** /events subscribers */
  events: Pick<SseHub, "subscribe">;
}

/** Every error body the API sends. */
export const ErrorBodySchema = z.object({ error: z.string(), code: z.string() }).strict();
export type ErrorBody = z.infer<typeof ErrorBodySchema>;

/** Prometheus text exposition format, version 0.0.4. */
export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
const JSON_CONTENT_TYPE = "application/json; charset=utf-8";
/** Longest request target (path + query) accepted; longer is 414. */
export const MAX_URL_TARGET = 2048;
/** The routes, each with the query parameters it accepts. */
const ROUTES: Record<string, readonly string[]> = {
  "/health": ["require_enforce"],
  "/capabilities": [],
  "/state": [],
  "/metrics": ["detailed"],
  "/events": [],
};
const ALLOW = "GET, HEAD";

/** Headers on every answer: nothing cached, nothing sniffed, nothing framed. */
const SECURITY_HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
};

const SECURITY_HEADER_LIST = Object.entries(SECURITY_HEADERS);

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}

function stringify(body: unknown): string {
  try {
    return JSON.stringify(body); // fast path: no replacer call per value
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    return JSON.stringify(body, jsonReplacer); // BigInt somewhere (a cycle throws again)
  }
}

function json(body: unknown, status: number, headers: Record<string, string> = {}): Response {
  return new Response(stringify(body), {
    status,
    headers: { "content-type": JSON_CONTENT_TYPE, ...headers },
  });
}

function fail(status: number, code: string, error: string, headers?: Record<string, string>) {
  return json({ error, code } satisfies ErrorBody, status, headers);
}

/** A client error with a JSON body, thrown from a handler. */
function clientError(status: 400 | 414, code: string, error: string): HTTPException {
  return new HTTPException(status, { res: fail(status, code, error) });
}

/** Reject query parameters the route does not know (a typo must not pass silently). */
function checkQuery(c: Context, allowed: readonly string[]): URLSearchParams {
  const url = c.req.url;
  const mark = url.indexOf("?");
  const q = new URLSearchParams(mark < 0 ? "" : url.slice(mark + 1));
  for (const key of new Set(q.keys())) {
    if (!allowed.includes(key)) {
      const accepted = allowed.length > 0 ? `accepted: ${allowed.join(", ")}` : "none accepted";
      throw clientError(
        400,
        "BAD_QUERY",
        `unknown query parameter ${JSON.stringify(key)} for ${c.req.path} (${accepted})`,
      );
    }
    if (q.getAll(key).length > 1) {
      throw clientError(400, "BAD_QUERY", `query parameter ${JSON.stringify(key)} given twice`);
    }
  }
  return q;
}

/** A boolean query flag: absent → false; 1/true → true; 0/false → false; else 400. */
function flag(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  if (v === null) return false;
  if (v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw clientError(
    400,
    "BAD_QUERY",
    `${name} must be 1, true, 0 or false, got ${JSON.stringify(v.slice(0, 64))}`,
  );
}

/** The API, wired to its dependencies. */
export function createApp(deps: HttpDeps): Hono {
  const app = new Hono();

  app.use("*", async (c, next) => {
    const url = c.req.url; // absolute: scheme://authority/target
    const target = url.length - url.indexOf("/", url.indexOf("//") + 2);
    if (target > MAX_URL_TARGET) {
      c.res = fail(414, "URI_TOO_LONG", `request target longer than ${MAX_URL_TARGET} bytes`);
    } else {
      await next();
    }
    const h = c.res.headers;
    for (const [k, v] of SECURITY_HEADER_LIST) if (!h.has(k)) h.set(k, v);
  });

  app.get("/health", (c) => {
    const want = flag(checkQuery(c, ROUTES["/health"]), "require_enforce");
    const h = deps.health(want);
    return json(h.body, h.status);
  });

  app.get("/capabilities", (c) => {
    checkQuery(c, ROUTES["/capabilities"]);
    const report = deps.capabilities();
    if (report === null || report === undefined) {
      return fail(
        503,
        "CAPABILITIES_NOT_READY",
        "the capabilities report is not built yet (the agent is starting); retry shortly",
        { "retry-after": "1" },
      );
    }
    return json(report, 200);
  });

  app.get("/state", (c) => {
    checkQuery(c, ROUTES["/state"]);
    return json(deps.state(), 200);
  });

  app.get("/metrics", async (c) => {
    const q = checkQuery(c, ROUTES["/metrics"]);
    const text = await deps.metrics(flag(q, "detailed"));
    return new Response(text, { status: 200, headers: { "content-type": METRICS_CONTENT_TYPE } });
  });

  app.get("/events", (c) => {
    checkQuery(c, ROUTES["/events"]);
    const headers = {
      "content-type": "text/event-stream; charset=utf-8",
      "x-accel-buffering": "no",
    };
    // HEAD reaches GET handlers; it must not take a subscriber slot
    if (c.req.method === "HEAD") return new Response(null, { status: 200, headers });
    let stream: ReadableStream<Uint8Array>;
    try {
      // the caller the server learned (serve.ts puts it in env), else unknown
      const env = c.env as { subscriber?: SubscriberId } | undefined;
      stream = deps.events.subscribe(env?.subscriber);
    } catch (e) {
      if (e instanceof AegisError && (e.code === "SSE_CLIENT_LIMIT" || e.code === "SSE_CLOSED")) {
        return fail(503, e.code, e.message, { "retry-after": "5" });
      }
      throw e;
    }
    return new Response(stream, { status: 200, headers });
  });

  for (const path of Object.keys(ROUTES)) {
    app.all(path, (c) =>
      fail(
        405,
        "METHOD_NOT_ALLOWED",
        `${c.req.method} is not allowed on ${path}: the HTTP API is read-only (GET); ` +
          `changes go through the aegisbpf CLI (control socket)`,
        { allow: ALLOW },
      ));
  }

  app.notFound((c) =>
    fail(
      404,
      "NOT_FOUND",
      `no such endpoint ${JSON.stringify(c.req.path.slice(0, 128))}; ` +
        `endpoints: ${Object.keys(ROUTES).join(", ")}`,
    )
  );

  app.onError((err, c) => {
    if (err instanceof HTTPException) return err.getResponse();
    log("http").error(
      literal(`${c.req.method} ${c.req.path} failed: ${err.stack ?? err.message}`),
      { method: c.req.method, path: c.req.path, error: String(err) },
    );
    return fail(500, "INTERNAL", "internal error");
  });

  return app;
}
