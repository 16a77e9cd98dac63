import assert from "node:assert/strict";
import { AegisError } from "../errors.ts";
import { createApp, type HttpDeps } from "./app.ts";
import {
  describeListenError,
  hostOfHeader,
  isLoopback,
  parseListen,
  startHttpServer,
} from "./serve.ts";
import { SseHub } from "./sse.ts";

const NET = ["127.0.0.1", "0.0.0.0"].every((host) =>
  Deno.permissions.querySync({ name: "net", host }).state === "granted"
);

/** A test that needs loopback TCP (the unit tier runs without --allow-net: it says so). */
function tcpTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    name: NET ? name : `${name} (SKIPPED: needs --allow-net=127.0.0.1,0.0.0.0)`,
    ignore: !NET,
    fn,
  });
}

function deps(hub = new SseHub()): HttpDeps {
  return {
    health: (req) => ({ status: req ? 503 : 200, body: { ok: !req } }),
    capabilities: () => ({ schema_version: 1 }),
    state: () => ({ runtime_state: "AUDIT_FALLBACK" }),
    metrics: () => Promise.resolve("aegisbpf_enforce_capable 0\n"),
    events: hub,
  };
}

Deno.test("parseListen accepts ADDR:PORT forms and off", () => {
  const cases: [string, { hostname: string; port: number } | null][] = [
    ["off", null],
    ["OFF", null],
    ["127.0.0.1:80", { hostname: "127.0.0.1", port: 80 }],
    ["[::1]:8080", { hostname: "::1", port: 8080 }],
    ["localhost:9000", { hostname: "localhost", port: 9000 }],
    ["0.0.0.0:0", { hostname: "0.0.0.0", port: 0 }],
    ["[::]:65535", { hostname: "::", port: 65535 }],
    ["[::ffff:127.0.0.1]:80", { hostname: "::ffff:127.0.0.1", port: 80 }],
    ["[fe80::1:2:3]:80", { hostname: "fe80::1:2:3", port: 80 }],
    ["Node-1.Example.com:443", { hostname: "node-1.example.com", port: 443 }],
  ];
  for (const [text, want] of cases) assert.deepEqual(parseListen(text), want, text);
});

Deno.test("parseListen rejects bad input naming the flag and the value", () => {
  for (
    const bad of [
      "",
      ":80",
      "127.0.0.1",
      "127.0.0.1:",
      "127.0.0.1:65536",
      "127.0.0.1:-1",
      "127.0.0.1:80x",
      "127.0.0.1:123456",
      "256.1.1.1:80",
      "1.2.3:80",
      "::1:80",
      "[::1]",
      "[::1]80",
      "[::1:80",
      "[zz::1]:80",
      "[1:2:3:4:5:6:7:8:9]:80",
      "a b:80",
      "-bad-:80",
      "http://127.0.0.1:80",
    ]
  ) {
    assert.throws(
      () => parseListen(bad),
      (e) =>
        e instanceof AegisError && e.code === "USAGE" && e.message.includes("--http-listen") &&
        e.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
});

Deno.test("isLoopback knows loopback addresses and names only", () => {
  for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "0:0:0:0:0:0:0:1", "localhost"]) {
    assert.equal(isLoopback(h), true, h);
  }
  assert.equal(isLoopback("::ffff:127.0.0.1"), true);
  for (
    const h of ["0.0.0.0", "::", "10.0.0.1", "128.0.0.1", "::2", "localhost.evil.com", "evil", ""]
  ) {
    assert.equal(isLoopback(h), false, h);
  }
});

Deno.test("hostOfHeader strips the port and IPv6 brackets", () => {
  assert.equal(hostOfHeader("localhost"), "localhost");
  assert.equal(hostOfHeader("localhost:8080"), "localhost");
  assert.equal(hostOfHeader("[::1]:80"), "::1");
  assert.equal(hostOfHeader("127.0.0.1:80"), "127.0.0.1");
});

tcpTest("a started server answers real TCP requests on an ephemeral port", async () => {
  const srv = await startHttpServer(createApp(deps()), { hostname: "127.0.0.1", port: 0 });
  try {
    assert.equal(srv.addr.hostname, "127.0.0.1");
    assert.ok(srv.addr.port > 0);
    const base = `http://127.0.0.1:${srv.addr.port}`;
    const r = await fetch(`${base}/health`);
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { ok: true });
    const r2 = await fetch(`${base}/health?require_enforce=1`);
    assert.equal(r2.status, 503);
    await r2.body?.cancel();
    const r3 = await fetch(`${base}/health`, { method: "POST", body: "{}" });
    assert.equal(r3.status, 405);
    await r3.body?.cancel();
  } finally {
    await srv.close();
  }
});

/** One raw HTTP/1.1 request (fetch cannot set Host); the status code of the answer. */
async function rawStatus(port: number, host: string): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET /health HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return Number(text.split(" ")[1]);
  } finally {
    conn.close();
  }
}

tcpTest("a loopback listener refuses a non-loopback Host header (DNS rebinding)", async () => {
  const srv = await startHttpServer(createApp(deps()), { hostname: "127.0.0.1", port: 0 });
  try {
    const p = srv.addr.port;
    assert.equal(await rawStatus(p, `localhost:${p}`), 200);
    assert.equal(await rawStatus(p, `127.0.0.1:${p}`), 200);
    assert.equal(await rawStatus(p, `[::1]:${p}`), 200);
    assert.equal(await rawStatus(p, `attacker.example:${p}`), 403);
    assert.equal(await rawStatus(p, `127.0.0.1.attacker.example`), 403);
  } finally {
    await srv.close();
  }
});

tcpTest(
  "a port in use is HTTP_LISTEN_FAILED naming the address, the flag and what to do",
  async () => {
    const blocker = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (blocker.addr as Deno.NetAddr).port;
    try {
      await assert.rejects(
        () => startHttpServer(createApp(deps()), { hostname: "127.0.0.1", port }),
        (e) =>
          e instanceof AegisError && e.code === "HTTP_LISTEN_FAILED" &&
          e.message.includes(`--http-listen=127.0.0.1:${port}`) &&
          e.message.includes("already in use") && e.message.includes("--http-listen=off"),
      );
    } finally {
      blocker.close();
    }
  },
);

Deno.test("permission and address errors are explained", () => {
  const low = describeListenError(
    { hostname: "127.0.0.1", port: 80 },
    new Deno.errors.PermissionDenied("Permission denied (os error 13)"),
  );
  assert.equal(low.code, "HTTP_LISTEN_FAILED");
  assert.match(low.message, /--http-listen=127\.0\.0\.1:80/);
  assert.match(low.message, /below 1024 need root or CAP_NET_BIND_SERVICE/);
  const v6 = describeListenError(
    { hostname: "fe80::99", port: 8080 },
    new Deno.errors.AddrNotAvailable("Cannot assign requested address"),
  );
  assert.match(v6.message, /\[fe80::99\]:8080/);
  assert.match(v6.message, /not an address of this host/);
});

tcpTest("a non-loopback address needs allowRemote", async () => {
  await assert.rejects(
    () => startHttpServer(createApp(deps()), { hostname: "0.0.0.0", port: 0 }),
    (e) =>
      e instanceof AegisError && e.code === "HTTP_LISTEN_NOT_LOOPBACK" &&
      e.message.includes("--http-listen") && e.message.includes("--http-allow-remote"),
  );
  const srv = await startHttpServer(createApp(deps()), { hostname: "0.0.0.0", port: 0 }, {
    allowRemote: true,
  });
  try {
    // no Host check on a remote listener: any name may reach it
    assert.equal(await rawStatus(srv.addr.port, "node.example"), 200);
  } finally {
    await srv.close();
  }
});

tcpTest(
  "close() ends open /events streams through beforeClose; the signal closes too",
  async () => {
    const hub = new SseHub();
    const ac = new AbortController();
    const srv = await startHttpServer(createApp(deps(hub)), { hostname: "127.0.0.1", port: 0 }, {
      signal: ac.signal,
      beforeClose: () => hub.close(),
    });
    const res = await fetch(`http://127.0.0.1:${srv.addr.port}/events`);
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.match(new TextDecoder().decode(first.value), /aegisbpf events/);
    assert.equal(hub.stats().clients, 1);
    ac.abort();
    await srv.close(); // the same close as the signal's
    for (;;) if ((await reader.read()).done) break;
    assert.equal(hub.stats().disconnected_clients.shutdown, 1);
    await assert.rejects(() => fetch(`http://127.0.0.1:${srv.addr.port}/health`), TypeError);
  },
);

tcpTest("a client that closes its /events connection is unsubscribed", async () => {
  const hub = new SseHub();
  const srv = await startHttpServer(createApp(deps(hub)), { hostname: "127.0.0.1", port: 0 }, {
    beforeClose: () => hub.close(),
  });
  try {
    const res = await fetch(`http://127.0.0.1:${srv.addr.port}/events`);
    const reader = res.body!.getReader();
    await reader.read(); // the hello comment
    hub.publish({ type: "exec", pid: 1 });
    assert.match(new TextDecoder().decode((await reader.read()).value), /"pid":1/);
    assert.equal(hub.stats().clients, 1);
    await reader.cancel();
    for (let i = 0; i < 200 && hub.stats().clients > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
      hub.publish({ type: "exec", pid: 2 }); // writing to a closed connection notices it
    }
    assert.equal(hub.stats().clients, 0);
    assert.equal(hub.stats().disconnected_clients.closed, 1);
    assert.equal(hub.stats().dropped_clients.slow, 0);
  } finally {
    await srv.close();
  }
});

tcpTest("/events subscriptions are counted per caller uid; root keeps its slots", async () => {
  const hub = new SseHub({ maxClients: 6, maxClientsPerUid: 2, rootReserved: 2 });
  let uid: number | null = 1000;
  const asked: string[] = [];
  const srv = await startHttpServer(createApp(deps(hub)), { hostname: "127.0.0.1", port: 0 }, {
    beforeClose: () => hub.close(),
    peerUid: (remote, local) => {
      asked.push(`${remote}>${local}`);
      return Promise.resolve(uid);
    },
  });
  const open: ReadableStreamDefaultReader<Uint8Array>[] = [];
  const sub = async () => {
    const r = await fetch(`http://127.0.0.1:${srv.addr.port}/events`);
    if (r.status === 200) open.push(r.body!.getReader());
    else await r.body?.cancel();
    return r.status;
  };
  try {
    assert.equal((await fetch(`http://127.0.0.1:${srv.addr.port}/health`)).status, 200);
    assert.equal(asked.length, 0, "no uid lookup outside /events");
    assert.deepEqual([await sub(), await sub(), await sub()], [200, 200, 503]);
    uid = 1001;
    assert.deepEqual([await sub(), await sub()], [200, 200]);
    uid = null; // unknown: non-root, and only the root reserve is left
    assert.equal(await sub(), 503);
    uid = 0;
    assert.deepEqual([await sub(), await sub(), await sub()], [200, 200, 503]);
    assert.equal(hub.stats().clients, 6);
    assert.match(asked[0], new RegExp(`^127\\.0\\.0\\.1:\\d+>127\\.0\\.0\\.1:${srv.addr.port}$`));
  } finally {
    await srv.close();
    for (const r of open) await r.cancel().catch(() => {});
  }
});
