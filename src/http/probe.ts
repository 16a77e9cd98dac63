/**
 * The two narrow listeners a pod needs (docs/http.md "Probe and metrics
 * listeners"), each a Hono app from injected dependencies, served by
 * src/http/serve.ts on an address of the pod network:
 *
 * | app                | route          | answer                                          |
 * | ------------------ | -------------- | ----------------------------------------------- |
 * | createProbeApp     | GET /readyz    | 200 `ok` when require_enforce holds, else 503   |
 * |                    | GET /livez     | 200 `ok` while the runtime checks run, else 503 |
 * | createMetricsApp   | GET /metrics   | Prometheus text 0.0.4                           |
 *
 * HEAD works wherever GET does. Every other path and every other method is
 * 404 with an empty body: these listeners face the pod network, so they
 * name nothing, list nothing and never show posture details, policy, rules
 * or events (those stay on the loopback API and the control socket).
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { literal, log } from "../log.ts";
import { METRICS_CONTENT_TYPE } from "./app.ts";

/** What the probe listener reads from the daemon; each call is made per request. */
export interface ProbeDeps {
  /** the condition of /health?require_enforce=1 (200 there ⇔ true here) */
  ready(): boolean;
  /** the daemon's loop is alive (its runtime checks complete) */
  alive(): boolean;
}

/** The flag that opens the probe listener. */
export const PROBE_LISTEN_FLAG = "--probe-listen";
/** The flag that opens the metrics listener. */
export const METRICS_LISTEN_FLAG = "--metrics-listen";

const TEXT = "text/plain; charset=utf-8";
const HEADERS: Record<string, string> = {
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
};

function word(status: 200 | 503, body: string): Response {
  return new Response(`${body}\n`, { status, headers: { "content-type": TEXT, ...HEADERS } });
}

function notFound(): Response {
  return new Response(null, { status: 404, headers: HEADERS });
}

function isRead(c: Context): boolean {
  return c.req.method === "GET" || c.req.method === "HEAD";
}

/** A failing dependency is 500 with no body; the details only in the log. */
function guarded(name: string, app: Hono): Hono {
  app.notFound(() => notFound());
  app.onError((err, c) => {
    log("http").error(
      literal(`${name} ${c.req.method} ${c.req.path} failed: ${err.stack ?? err.message}`),
    );
    return new Response(null, { status: 500, headers: HEADERS });
  });
  return app;
}

/** /readyz and /livez, nothing else. */
export function createProbeApp(deps: ProbeDeps): Hono {
  const app = new Hono();
  app.all("/readyz", (c) => {
    if (!isRead(c)) return notFound();
    return deps.ready() ? word(200, "ok") : word(503, "unready");
  });
  app.all("/livez", (c) => {
    if (!isRead(c)) return notFound();
    return deps.alive() ? word(200, "ok") : word(503, "stalled");
  });
  return guarded("probe", app);
}

/** /metrics (the same text as the loopback API's plain /metrics), nothing else. */
export function createMetricsApp(metrics: () => Promise<string>): Hono {
  const app = new Hono();
  app.all("/metrics", async (c) => {
    if (!isRead(c)) return notFound();
    // no query parameters: ?detailed=1 (per-hook detail) stays on the loopback API
    if (c.req.url.includes("?")) return notFound();
    return new Response(await metrics(), {
      status: 200,
      headers: { "content-type": METRICS_CONTENT_TYPE, ...HEADERS },
    });
  });
  return guarded("metrics", app);
}

/**
 * Liveness from the time of the last completed runtime check: alive while
 * one completed within `staleMs`, or, before the first one, while the start
 * is younger than `startupMs` (restoring a large policy takes a while; the
 * systemd unit gives it 300 s the same way).
 */
export class Liveness {
  #started: number;
  #last: number | null = null;

  constructor(
    readonly staleMs = 15_000,
    readonly startupMs = 300_000,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.#started = now();
  }

  /** A runtime check ran to its end. */
  beat(): void {
    this.#last = this.now();
  }

  alive(): boolean {
    const t = this.now();
    return this.#last === null ? t - this.#started < this.startupMs : t - this.#last < this.staleMs;
  }
}
