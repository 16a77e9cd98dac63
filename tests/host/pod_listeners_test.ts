/**
 * Host tier: the pod listeners of the real agent (docs/http.md "Probe and
 * metrics listeners"), `run --probe-listen` and `run --metrics-listen`, over
 * TCP, with the agent in AUDIT_FALLBACK (this host has no BPF LSM).
 *
 * /readyz must give the status /health?require_enforce=1 gives (503 here:
 * the host cannot enforce), /livez 200 (the runtime checks run), and every
 * other path 404 with an empty body. /readyz answering 200 needs a kernel
 * that enforces: the unit tests (src/http/probe_test.ts) cover it with a
 * fake, and the daemon wires `ready` to the same health function the
 * loopback API uses.
 */
import { deepStrictEqual, match, ok, strictEqual } from "node:assert/strict";
import { Agent, agentEnv, cleanupAgent, freePort, httpGet } from "../lib/agent.ts";

async function get(port: number, path: string, method = "GET") {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: r.status, text: await r.text(), type: r.headers.get("content-type") };
}

Deno.test("--probe-listen: /readyz = /health?require_enforce=1, /livez 200, nothing else", async () => {
  const probe = freePort();
  const metrics = freePort();
  const e = agentEnv({ AEGIS_PROBE_LISTEN: `127.0.0.1:${probe}` });
  let a: Agent | null = null;
  try {
    a = new Agent([
      "--enforce-gate-mode=audit-fallback",
      `--metrics-listen=127.0.0.1:${metrics}`,
    ], e.env);
    await a.ready();
    match(a.err, /agent started, AUDIT_FALLBACK/);
    match(a.err, new RegExp(`probe listener listening on 127\\.0\\.0\\.1:${probe}`));

    const health = await httpGet(e.port, "/health?require_enforce=1");
    strictEqual(health.status, 503, "this host cannot enforce");
    const ready = await get(probe, "/readyz");
    strictEqual(ready.status, health.status, "readiness is the require_enforce condition");
    strictEqual(ready.text, "unready\n");
    strictEqual((await get(probe, "/readyz", "HEAD")).status, 503);

    const live = await get(probe, "/livez");
    deepStrictEqual([live.status, live.text], [200, "ok\n"], "alive though not ready");

    for (
      const p of ["/", "/health", "/health?require_enforce=1", "/metrics", "/state", "/events"]
    ) {
      const r = await get(probe, p);
      deepStrictEqual([r.status, r.text], [404, ""], `probe listener ${p}`);
    }
    for (const m of ["POST", "DELETE", "OPTIONS"]) {
      strictEqual((await get(probe, "/readyz", m)).status, 404, m);
    }

    const m = await get(metrics, "/metrics");
    strictEqual(m.status, 200);
    match(m.type ?? "", /^text\/plain; version=0\.0\.4/);
    match(m.text, /^aegisbpf_runtime_state\{/m);
    for (const p of ["/readyz", "/livez", "/health", "/metrics?detailed=1", "/events"]) {
      const r = await get(metrics, p);
      deepStrictEqual([r.status, r.text], [404, ""], `metrics listener ${p}`);
    }
    // liveness keeps holding while the runtime checks run (one each second)
    await new Promise((r) => setTimeout(r, 2500));
    strictEqual((await get(probe, "/livez")).status, 200);
  } finally {
    await cleanupAgent(a, e);
  }
});

async function exitWithin(a: Agent, ms = 60_000): Promise<Deno.CommandStatus> {
  const end = Date.now() + ms;
  while (a.exited === null && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  if (a.exited === null) {
    await a.stop();
    throw new Error(`the agent did not refuse within ${ms} ms; stderr:\n${a.err}`);
  }
  return await a.exit();
}

Deno.test("a bad --probe-listen refuses the start naming the flag; a busy port too", async () => {
  const e = agentEnv();
  try {
    const bad = new Agent(
      ["--enforce-gate-mode=audit-fallback", "--probe-listen=10.0.0.1:http"],
      e.env,
    );
    // a start that ignored the flag would run on: bounded wait (then a stop)
    const st = await exitWithin(bad);
    ok(st.code !== 0, "refused");
    match(
      bad.err,
      /--probe-listen="10\.0\.0\.1:http" is not valid: the port "http" is not a number/,
    );
    ok(!bad.err.includes("agent started"));

    const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const port = (busy.addr as Deno.NetAddr).port;
      const b = new Agent([
        "--enforce-gate-mode=audit-fallback",
        `--probe-listen=127.0.0.1:${port}`,
      ], e.env);
      const st2 = await exitWithin(b);
      ok(st2.code !== 0, "refused");
      match(b.err, new RegExp(`cannot serve the probe listener on 127\\.0\\.0\\.1:${port}`));
      match(b.err, /already in use/);
    } finally {
      busy.close();
    }
  } finally {
    await cleanupAgent(null, e);
  }
});
