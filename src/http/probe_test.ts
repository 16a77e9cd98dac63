import assert from "node:assert/strict";
import { AegisError } from "../errors.ts";
import {
  createMetricsApp,
  createProbeApp,
  Liveness,
  METRICS_LISTEN_FLAG,
  PROBE_LISTEN_FLAG,
} from "./probe.ts";
import { METRICS_CONTENT_TYPE } from "./app.ts";
import { parseListen, startHttpServer } from "./serve.ts";

function probeApp(state: { ready: boolean; alive: boolean }) {
  const calls = { ready: 0, alive: 0 };
  const app = createProbeApp({
    ready: () => (calls.ready++, state.ready),
    alive: () => (calls.alive++, state.alive),
  });
  return { app, calls };
}

Deno.test("/readyz follows ready(): 200 ok, else 503 unready; one word, no details", async () => {
  const state = { ready: true, alive: true };
  const { app, calls } = probeApp(state);
  let r = await app.request("/readyz");
  assert.equal(r.status, 200);
  assert.equal(await r.text(), "ok\n");
  assert.equal(r.headers.get("cache-control"), "no-store");
  assert.match(r.headers.get("content-type") ?? "", /^text\/plain/);
  state.ready = false;
  r = await app.request("/readyz");
  assert.equal(r.status, 503);
  assert.equal(await r.text(), "unready\n");
  assert.equal(calls.ready, 2);
  assert.equal(calls.alive, 0, "readiness never asks liveness");
});

Deno.test("/livez follows alive() and is independent of readiness", async () => {
  const state = { ready: false, alive: true };
  const { app, calls } = probeApp(state);
  let r = await app.request("/livez");
  assert.equal(r.status, 200, "alive but not enforcing: live, not ready");
  assert.equal(await r.text(), "ok\n");
  state.alive = false;
  state.ready = true;
  r = await app.request("/livez");
  assert.equal(r.status, 503);
  assert.equal(await r.text(), "stalled\n");
  assert.equal(calls.ready, 0);
});

Deno.test("HEAD works on both probes", async () => {
  const { app } = probeApp({ ready: false, alive: true });
  assert.equal((await app.request("/readyz", { method: "HEAD" })).status, 503);
  assert.equal((await app.request("/livez", { method: "HEAD" })).status, 200);
});

Deno.test("the probe listener answers 404 with no body to every other path and method", async () => {
  const { app, calls } = probeApp({ ready: true, alive: true });
  const paths = [
    "/",
    "/health",
    "/health?require_enforce=1",
    "/metrics",
    "/state",
    "/capabilities",
    "/events",
    "/readyz/",
    "/readyz/x",
    "/READYZ",
    "/livez.json",
    "/healthz",
  ];
  for (const p of paths) {
    const r = await app.request(p);
    assert.equal(r.status, 404, p);
    assert.equal(await r.text(), "", p);
    assert.equal(r.headers.get("content-type"), null, p);
  }
  for (const method of ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"]) {
    for (const p of ["/readyz", "/livez"]) {
      const r = await app.request(p, { method, body: method === "OPTIONS" ? undefined : "x" });
      assert.equal(r.status, 404, `${method} ${p}`);
      assert.equal(await r.text(), "");
    }
  }
  assert.deepEqual(calls, { ready: 0, alive: 0 }, "refused requests never reach the daemon");
});

Deno.test("a failing dependency is 500 with no body (details only in the log)", async () => {
  const app = createProbeApp({
    ready: () => {
      throw new Error("secret detail /etc/shadow");
    },
    alive: () => true,
  });
  const r = await app.request("/readyz");
  assert.equal(r.status, 500);
  assert.equal(await r.text(), "");
});

Deno.test("the metrics listener serves /metrics and nothing else", async () => {
  let n = 0;
  const app = createMetricsApp(() => (n++, Promise.resolve("aegisbpf_up 1\n")));
  const r = await app.request("/metrics");
  assert.equal(r.status, 200);
  assert.equal(r.headers.get("content-type"), METRICS_CONTENT_TYPE);
  assert.equal(await r.text(), "aegisbpf_up 1\n");
  for (const p of ["/", "/readyz", "/livez", "/health", "/events", "/metrics?detailed=1"]) {
    const x = await app.request(p);
    assert.equal(x.status, 404, p);
    assert.equal(await x.text(), "", p);
  }
  assert.equal((await app.request("/metrics", { method: "POST", body: "" })).status, 404);
  assert.equal(n, 1);
});

Deno.test("Liveness: alive during the start grace, then only while checks are fresh", () => {
  let t = 0;
  const l = new Liveness(15_000, 300_000, () => t);
  assert.equal(l.alive(), true, "starting");
  t = 299_999;
  assert.equal(l.alive(), true);
  t = 300_000;
  assert.equal(l.alive(), false, "a start that never reached the runtime checks");
  l.beat();
  assert.equal(l.alive(), true);
  t += 14_999;
  assert.equal(l.alive(), true);
  t += 1;
  assert.equal(l.alive(), false, "no completed check for 15 s");
  l.beat();
  assert.equal(l.alive(), true);
});

Deno.test("parseListen names --probe-listen / --metrics-listen in its errors", () => {
  assert.deepEqual(parseListen("10.0.0.7:9440", PROBE_LISTEN_FLAG), {
    hostname: "10.0.0.7",
    port: 9440,
  });
  assert.equal(parseListen("off", PROBE_LISTEN_FLAG), null);
  const bad: [string, RegExp][] = [
    ["10.0.0.7:http", /the port "http" is not a number/],
    ["10.0.0.7:99999", /not a number from 0 to 65535/],
    ["10.0.0.7", /port is missing/],
    ["300.1.1.1:9440", /not an IPv4 address/],
    ["fd00::7:9440", /IPv6 address must be written in \[ \]/],
    ["$(POD_IP):9440", /not a host name or IPv4 address/],
    ["", /empty/],
  ];
  for (const [text, why] of bad) {
    for (const flag of [PROBE_LISTEN_FLAG, METRICS_LISTEN_FLAG]) {
      assert.throws(() => parseListen(text, flag), (e: unknown) => {
        assert.ok(e instanceof AegisError);
        assert.ok(e.message.startsWith(`${flag}=${JSON.stringify(text)} is not valid`), e.message);
        assert.match(e.message, why);
        return true;
      });
    }
  }
});

Deno.test("a probe listener on a busy port fails naming --probe-listen", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    await assert.rejects(
      startHttpServer(
        createProbeApp({ ready: () => true, alive: () => true }),
        { hostname: "127.0.0.1", port },
        { allowRemote: true, flag: PROBE_LISTEN_FLAG, label: "probe listener" },
      ),
      (e: unknown) => {
        assert.ok(e instanceof AegisError);
        assert.equal(e.code, "HTTP_LISTEN_FAILED");
        assert.match(e.message, /cannot serve the probe listener on 127\.0\.0\.1:\d+/);
        assert.match(e.message, /--probe-listen=127\.0\.0\.1:\d+/);
        assert.match(e.message, /disable the probe listener with --probe-listen=off/);
        return true;
      },
    );
  } finally {
    busy.close();
  }
});

Deno.test("over TCP: the probe listener accepts any Host (kubelet sends the pod IP)", async () => {
  const state = { ready: false, alive: true };
  const srv = await startHttpServer(
    createProbeApp({ ready: () => state.ready, alive: () => state.alive }),
    { hostname: "127.0.0.1", port: 0 },
    { allowRemote: true, flag: PROBE_LISTEN_FLAG, label: "probe listener" },
  );
  try {
    const base = `http://127.0.0.1:${srv.addr.port}`;
    const get = async (p: string, host?: string) => {
      const r = await fetch(`${base}${p}`, host ? { headers: { host } } : {});
      await r.body?.cancel();
      return r.status;
    };
    assert.equal(await get("/readyz", "10.244.1.7:9440"), 503);
    state.ready = true;
    assert.equal(await get("/readyz", "10.244.1.7:9440"), 200);
    assert.equal(await get("/livez"), 200);
    assert.equal(await get("/health"), 404);
  } finally {
    await srv.close();
  }
});
