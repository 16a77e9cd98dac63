import assert from "node:assert/strict";
import { AegisError } from "../errors.ts";
import { createApp, ErrorBodySchema, type HttpDeps, METRICS_CONTENT_TYPE } from "./app.ts";
import { SseHub } from "./sse.ts";

interface Fake extends HttpDeps {
  calls: { health: boolean[] };
}

function fakeDeps(over: Partial<HttpDeps> = {}): Fake {
  const calls = { health: [] as boolean[] };
  return {
    calls,
    health(requireEnforce) {
      calls.health.push(requireEnforce);
      return requireEnforce
        ? {
          status: 503,
          body: { ok: false, runtime_state: "AUDIT_FALLBACK", blockers: ["BPF_LSM_DISABLED"] },
        }
        : { status: 200, body: { ok: true, runtime_state: "AUDIT_FALLBACK" } };
    },
    capabilities: () => ({ schema_version: 1, enforce_capable: false }),
    state: () => ({ runtime_state: "ENFORCE", transitions: 3n, emergency: { active: false } }),
    metrics: () =>
      Promise.resolve("# TYPE aegisbpf_blocks_total counter\naegisbpf_blocks_total 7\n"),
    events: new SseHub(),
    ...over,
  };
}

async function errorBody(res: Response) {
  assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
  return ErrorBodySchema.parse(await res.json());
}

function assertSecurityHeaders(res: Response): void {
  assert.equal(res.headers.get("cache-control"), "no-store");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  assert.equal(res.headers.get("x-frame-options"), "DENY");
}

Deno.test("GET /health passes require_enforce to the dependency and answers its status", async () => {
  const deps = fakeDeps();
  const app = createApp(deps);
  const ok = await app.request("/health");
  assert.equal(ok.status, 200);
  assert.deepEqual(await ok.json(), { ok: true, runtime_state: "AUDIT_FALLBACK" });
  assertSecurityHeaders(ok);
  for (const q of ["1", "true"]) {
    const r = await app.request(`/health?require_enforce=${q}`);
    assert.equal(r.status, 503);
    assert.deepEqual((await r.json()).blockers, ["BPF_LSM_DISABLED"]);
  }
  for (const q of ["0", "false"]) {
    assert.equal((await app.request(`/health?require_enforce=${q}`)).status, 200);
  }
  assert.deepEqual(deps.calls.health, [false, true, true, false, false]);
});

Deno.test("GET /health with a bad query is 400 and never asks for health", async () => {
  const deps = fakeDeps();
  const app = createApp(deps);
  for (
    const q of [
      "require_enforce=yes",
      "require_enforce=",
      "require_enforce",
      "require_enforce=2",
      "require-enforce=1", // a typo must not silently give the non-enforce answer
      "require_enforce=1&require_enforce=0",
    ]
  ) {
    const r = await app.request(`/health?${q}`);
    assert.equal(r.status, 400, q);
    const body = await errorBody(r);
    assert.equal(body.code, "BAD_QUERY", q);
  }
  assert.deepEqual(deps.calls.health, []);
  const r = await app.request("/state?x=1");
  assert.equal(r.status, 400);
  assert.match((await errorBody(r)).error, /unknown query parameter "x"/);
});

Deno.test("a request target past the limit is 414", async () => {
  const app = createApp(fakeDeps());
  const r = await app.request(`/health?require_enforce=1&pad=${"a".repeat(3000)}`);
  assert.equal(r.status, 414);
  assert.equal((await errorBody(r)).code, "URI_TOO_LONG");
  assertSecurityHeaders(r);
});

Deno.test("GET /capabilities answers the report, or 503 while it is not built", async () => {
  let report: unknown = null;
  const app = createApp(fakeDeps({ capabilities: () => report }));
  const r1 = await app.request("/capabilities");
  assert.equal(r1.status, 503);
  assert.equal(r1.headers.get("retry-after"), "1");
  assert.equal((await errorBody(r1)).code, "CAPABILITIES_NOT_READY");
  report = { schema_version: 1, capability: "AuditOnly" };
  const r2 = await app.request("/capabilities");
  assert.equal(r2.status, 200);
  assert.deepEqual(await r2.json(), report);
});

Deno.test("GET /state serialises what the daemon reports (bigints as strings)", async () => {
  const app = createApp(fakeDeps());
  const r = await app.request("/state");
  assert.equal(r.status, 200);
  assert.deepEqual(await r.json(), {
    runtime_state: "ENFORCE",
    transitions: "3",
    emergency: { active: false },
  });
});

Deno.test("GET /metrics is Prometheus text 0.0.4", async () => {
  const app = createApp(fakeDeps());
  const r = await app.request("/metrics");
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), METRICS_CONTENT_TYPE);
  assert.match(r.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
  assert.equal(await r.text(), "# TYPE aegisbpf_blocks_total counter\naegisbpf_blocks_total 7\n");
});

Deno.test("GET /metrics?detailed=1 asks for the detailed render; a bad value is 400", async () => {
  const asked: boolean[] = [];
  const app = createApp(fakeDeps({
    metrics: (d: boolean) => {
      asked.push(d);
      return Promise.resolve("");
    },
  }));
  assert.equal((await app.request("/metrics?detailed=1")).status, 200);
  assert.equal((await app.request("/metrics")).status, 200);
  assert.deepEqual(asked, [true, false]);
  const bad = await app.request("/metrics?detailed=yes");
  assert.equal(bad.status, 400);
  assert.equal((await errorBody(bad)).code, "BAD_QUERY");
});

Deno.test("unknown path is 404 JSON, other methods are 405 with Allow, HEAD works", async () => {
  const app = createApp(fakeDeps());
  const nf = await app.request("/nope");
  assert.equal(nf.status, 404);
  assert.equal((await errorBody(nf)).code, "NOT_FOUND");
  assertSecurityHeaders(nf);
  assert.equal((await app.request("/health/")).status, 404);
  for (const path of ["/health", "/capabilities", "/state", "/metrics", "/events"]) {
    for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
      const r = await app.request(path, { method, body: method === "OPTIONS" ? null : "{}" });
      assert.equal(r.status, 405, `${method} ${path}`);
      assert.equal(r.headers.get("allow"), "GET, HEAD");
      assert.equal((await errorBody(r)).code, "METHOD_NOT_ALLOWED");
    }
  }
  const head = await app.request("/health", { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
});

Deno.test("a throwing dependency is 500 with no internals in the body", async () => {
  const secret = "/var/lib/aegisbpf/secret-path EACCES at readReport";
  const app = createApp(fakeDeps({
    state: () => {
      throw new Error(secret);
    },
    metrics: () => Promise.reject(new AegisError("X", secret)),
    health: () => {
      throw new TypeError(secret);
    },
  }));
  for (const path of ["/state", "/metrics", "/health"]) {
    const r = await app.request(path);
    assert.equal(r.status, 500, path);
    const text = await r.text();
    assert.deepEqual(JSON.parse(text), { error: "internal error", code: "INTERNAL" });
    assert.ok(!text.includes("secret") && !text.includes("at "), text);
    assertSecurityHeaders(r);
  }
});

Deno.test("GET /events streams published events; over the client limit is 503", async () => {
  const hub = new SseHub({ maxClients: 1 });
  const app = createApp(fakeDeps({ events: hub }));
  const r = await app.request("/events");
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.equal(r.headers.get("cache-control"), "no-store");
  const full = await app.request("/events");
  assert.equal(full.status, 503);
  assert.equal((await errorBody(full)).code, "SSE_CLIENT_LIMIT");
  // HEAD does not take a slot
  assert.equal((await app.request("/events", { method: "HEAD" })).status, 200);
  assert.equal(hub.stats().clients, 1);
  hub.publish({ type: "exec", pid: 42 });
  const reader = r.body!.getReader();
  let text = "";
  while (!text.includes("\n\ndata: ")) {
    text += new TextDecoder().decode((await reader.read()).value);
  }
  while (!text.endsWith("\n\n") || !text.includes('"pid":42')) {
    text += new TextDecoder().decode((await reader.read()).value);
  }
  assert.ok(text.includes('data: {"type":"exec","pid":42}\n\n'), text);
  await reader.cancel();
  assert.equal(hub.stats().clients, 0);
  hub.close();
  const closed = await app.request("/events");
  assert.equal(closed.status, 503);
  assert.equal((await errorBody(closed)).code, "SSE_CLOSED");
});
