/**
 * Host tier (root): the HTTP API under attack by an unprivileged local user
 * (uid 65534 and friends, through setpriv + /usr/bin/python3), served by
 * the real server (startHttpServer, default limits: docs/http.md) with the
 * real SseHub:
 *
 * (a) ~20k TCP connections from four processes that reconnect whenever the
 *     server closes one: the server survives and /health (a fresh
 *     connection each time, like a monitoring probe) answers 200 throughout;
 * (b) 2,000 slowloris connections dribbling a header byte a second: every
 *     one is closed by the server (header timeout or eviction), /health
 *     answers;
 * (c) 80 never-reading /events clients from eight non-root uids: root still
 *     subscribes.
 *
 * /health latency and the server's RSS are printed; no timing asserts
 * (speed belongs to bench/http). Each test is bounded to well under 60 s.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { type HttpServerHandle, startHttpServer } from "../../src/http/serve.ts";
import { SseHub } from "../../src/http/sse.ts";
import { writeStdout } from "../../src/log.ts";

const PY = "/usr/bin/python3";
const SETPRIV = "/usr/bin/setpriv";
const READY = [PY, SETPRIV].every((p) => {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
});
const IS_ROOT = (() => {
  try {
    return Deno.readTextFileSync("/proc/self/status").match(/^Uid:\s+(\d+)/m)?.[1] === "0";
  } catch {
    return false;
  }
})();

function floodTest(name: string, fn: () => Promise<void>): void {
  const why = !IS_ROOT
    ? "needs root (setpriv to other uids)"
    : !READY
    ? `needs ${PY} and ${SETPRIV}`
    : "";
  Deno.test({ name: why ? `${name} (SKIPPED: ${why})` : name, ignore: why !== "", fn });
}

/** Reconnecting flood: keep `n` connections open or opening for `dur` seconds. */
const FLOOD_PY = `
import errno, json, selectors, socket, sys, time
host, port, n, dur, src, again = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6] == "1"
sel = selectors.DefaultSelector()
st = {"opened": 0, "closed_by_server": 0, "errors": 0}
def open1():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # a source address per process: 5,000 ephemeral ports each, not 20,000 from one range
    s.setsockopt(socket.IPPROTO_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
    s.bind((src, 0))
    s.setblocking(False)
    r = s.connect_ex((host, port))
    if r not in (0, errno.EINPROGRESS):
        st["errors"] += 1
        s.close()
        return
    sel.register(s, selectors.EVENT_READ)
    st["opened"] += 1
for _ in range(n):
    open1()
print("ready", flush=True)
end = time.time() + dur
while time.time() < end:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            d = s.recv(1)
        except OSError:
            d = b""
        if not d:
            st["closed_by_server"] += 1
            sel.unregister(s)
            s.close()
            if again:
                open1()
print(json.dumps(st), flush=True)
`;

/** Slowloris: n connections, a request head that grows by one byte a second. */
const SLOWLORIS_PY = `
import errno, json, selectors, socket, sys, time
host, port, n, dur = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
sel = selectors.DefaultSelector()
live = set()
t0 = time.time()
closed_at = []
for _ in range(n):
    s = socket.create_connection((host, port), timeout=10)
    s.setblocking(False)
    s.send(b"GET /health HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nX-Slow: ")
    sel.register(s, selectors.EVENT_READ)
    live.add(s)
print("ready", flush=True)
got_answer = 0
def closed(s):
    sel.unregister(s)
    live.discard(s)
    s.close()
    closed_at.append(time.time() - t0)
next_drip = time.time() + 1
while live and time.time() - t0 < dur:
    for key, _ in sel.select(timeout=0.2):
        s = key.fileobj
        try:
            d = s.recv(4096)
        except OSError:
            d = b""
        if d:
            got_answer += 1
        closed(s)
    if time.time() >= next_drip:
        next_drip += 1
        for s in list(live):
            try:
                s.send(b"a")
            except OSError:
                closed(s)
print(json.dumps({"closed": len(closed_at), "still_open": len(live), "answered": got_answer,
                  "last_close_s": round(max(closed_at or [0]), 1)}), flush=True)
`;

/** n /events subscriptions that are never read; held for dur seconds. */
const SSE_HOLD_PY = `
import socket, sys, time
host, port, n, dur = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.create_connection((host, port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.send(b"GET /events HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
    socks.append(s)
print("ready", flush=True)
time.sleep(dur)
`;

/** A python script run as `uid`: its first stdout line "ready", then its last line. */
class Unprivileged {
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  constructor(uid: number, script: string, args: (string | number)[]) {
    this.#child = new Deno.Command(SETPRIV, {
      args: [
        `--reuid=${uid}`,
        `--regid=${uid}`,
        "--clear-groups",
        PY,
        "-c",
        script,
        ...args.map(String),
      ],
      stdout: "piped",
      stderr: "inherit",
      cwd: "/",
    }).spawn();
    this.#lines = this.#child.stdout
      .pipeThrough(new TextDecoderStream())
      .pipeThrough(splitLines())[Symbol.asyncIterator]();
  }
  async ready(): Promise<void> {
    const r = await this.#lines.next();
    assert.equal(r.value, "ready", "the unprivileged client started");
  }
  /** Wait for the end; the last stdout line parsed as JSON (or null). */
  async result(): Promise<Record<string, number> | null> {
    let last: string | null = null;
    for (;;) {
      const r = await this.#lines.next();
      if (r.done) break;
      last = r.value;
    }
    await this.#child.status;
    return last ? JSON.parse(last) : null;
  }
  kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* ended */ }
  }
}

function splitLines(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, ctl) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) ctl.enqueue(p);
    },
    flush(ctl) {
      if (rest) ctl.enqueue(rest);
    },
  });
}

async function withServer(
  fn: (srv: HttpServerHandle, hub: SseHub) => Promise<void>,
): Promise<void> {
  const hub = new SseHub();
  const app = createApp({
    health: () => ({ status: 200, body: { ok: true } }),
    capabilities: () => ({}),
    state: () => ({}),
    metrics: () => Promise.resolve(""),
    events: hub,
  });
  const srv = await startHttpServer(app, { hostname: "127.0.0.1", port: 0 }, {
    beforeClose: () => hub.close(),
  });
  try {
    await fn(srv, hub);
  } finally {
    await srv.close();
  }
}

/** One raw request on a fresh connection; the status and the time it took. */
async function rawGet(port: number, path: string, timeoutMs = 20_000): Promise<[number, number]> {
  const t0 = performance.now();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    await conn.write(
      new TextEncoder().encode(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`,
      ),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return [Number(text.split(" ")[1]), performance.now() - t0];
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

function rssMiB(): number {
  const kb = Number(/^VmRSS:\s+(\d+)/m.exec(Deno.readTextFileSync("/proc/self/status"))![1]);
  return kb / 1024;
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  const p = (q: number) => s[Math.min(s.length - 1, Math.floor(s.length * q))].toFixed(1);
  return `n=${s.length} p50=${p(0.5)}ms p99=${p(0.99)}ms max=${s[s.length - 1].toFixed(1)}ms`;
}

/**
 * One /health check as a monitoring probe makes it: a fresh connection,
 * retried (up to 5 attempts) when the server closed it before the request
 * arrived. Under a connection flood at the cap that happens when the
 * kernel's full accept queue delays the probe's first data segment past its
 * turn for eviction (docs/http.md "Limits"). Returns the time of the whole
 * check and the attempts that were cut.
 */
async function checkHealth(port: number): Promise<[number, number]> {
  const t0 = performance.now();
  for (let cut = 0; cut < 5; cut++) {
    let status = NaN;
    try {
      [status] = await rawGet(port, "/health");
    } catch (e) {
      if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
    }
    if (!Number.isNaN(status)) {
      assert.equal(status, 200, "/health answered during the attack");
      return [performance.now() - t0, cut];
    }
  }
  throw new assert.AssertionError({ message: "/health was cut 5 times in a row" });
}

/** Probe /health until `done` resolves; every check must end in 200. */
async function probeHealth(
  port: number,
  done: Promise<unknown>,
): Promise<{ ms: number[]; cut: number }> {
  let over = false;
  void done.finally(() => over = true);
  const ms: number[] = [];
  let cut = 0;
  while (!over) {
    const [t, c] = await checkHealth(port);
    ms.push(t);
    cut += c;
    await new Promise((r) => setTimeout(r, 20));
  }
  return { ms, cut };
}

floodTest(
  "20k TCP connections from an unprivileged user: the server survives, /health answers",
  async () => {
    await withServer(async (srv) => {
      const port = srv.addr.port;
      const rss0 = rssMiB();
      const procs = [0, 1, 2, 3].map((i) =>
        new Unprivileged(65534, FLOOD_PY, ["127.0.0.1", port, 5000, 15, `127.0.0.${2 + i}`, 0])
      );
      try {
        await Promise.all(procs.map((p) => p.ready()));
        let peak = rss0;
        const sampler = setInterval(() => peak = Math.max(peak, rssMiB()), 250);
        const results = Promise.all(procs.map((p) => p.result()));
        const during = await probeHealth(port, results);
        clearInterval(sampler);
        const st = (await results).filter((r) => r !== null);
        assert.equal(st.length, 4, "every flood process finished");
        const opened = st.reduce((a, r) => a + r.opened, 0);
        const s = srv.stats();
        assert.ok(opened >= 20_000, `the flood opened ${opened} connections`);
        assert.ok(s.connections <= s.max_connections, "the connection cap held");
        assert.ok(s.evicted_total > 0, "the cap evicted flood connections");
        const [after] = await rawGet(port, "/health");
        assert.equal(after, 200);
        writeStdout(
          `\n  flood: ${opened} connections opened by uid 65534 (${
            st.reduce((a, r) => a + r.closed_by_server, 0)
          } closed by the server); server accepted ${s.accepted_total}, evicted ${s.evicted_total}, ` +
            `accept errors ${s.accept_errors}, ${s.connections} open now\n` +
            `  /health during the flood: ${summary(during.ms)} (checks, retries included); ` +
            `${during.cut} attempts were cut before their request arrived and retried\n` +
            `  server RSS: ${rss0.toFixed(0)} MiB before, ${peak.toFixed(0)} MiB peak\n`,
        );
      } finally {
        for (const p of procs) p.kill();
      }
    });
  },
);

floodTest(
  "2,000 slowloris connections are closed by the header timeout; /health answers",
  async () => {
    await withServer(async (srv) => {
      const port = srv.addr.port;
      const loris = new Unprivileged(65534, SLOWLORIS_PY, ["127.0.0.1", port, 2000, 30]);
      try {
        await loris.ready();
        const result = loris.result();
        const during = await probeHealth(port, result);
        const r = await result;
        assert.ok(r, "the slowloris client reported");
        const s = srv.stats();
        assert.equal(
          r.closed,
          2000,
          `every slowloris connection was closed (${r.still_open} open)`,
        );
        assert.equal(r.answered, 0, "no slowloris head was ever answered");
        assert.ok(s.timeouts.head > 0, "the header timeout closed some");
        assert.ok(s.timeouts.head + s.evicted_total >= 2000, "timeouts and evictions closed all");
        writeStdout(
          `\n  slowloris: 2000 connections, all closed by ${r.last_close_s} s ` +
            `(${s.timeouts.head} by the header timeout, ${s.evicted_total} evicted at the cap)\n` +
            `  /health during the slowloris: ${
              summary(during.ms)
            }, ${during.cut} attempts cut; server RSS ${rssMiB().toFixed(0)} MiB\n`,
        );
      } finally {
        loris.kill();
      }
    });
  },
);

floodTest(
  "80 never-reading /events clients of 8 unprivileged uids: root still subscribes",
  async () => {
    await withServer(async (srv, hub) => {
      const port = srv.addr.port;
      const uids = [65534, 65533, 65532, 65531, 65530, 65529, 65528, 65527];
      const holders = uids.map((uid) =>
        new Unprivileged(uid, SSE_HOLD_PY, ["127.0.0.1", port, 10, 30])
      );
      try {
        await Promise.all(holders.map((h) => h.ready()));
        for (let i = 0; i < 500 && hub.stats().rejected_clients + hub.stats().clients < 80; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        const s = hub.stats();
        const reserve = s.max_clients - s.root_reserved;
        assert.equal(s.clients, reserve, `non-root subscribers fill only ${reserve} slots`);
        assert.equal(s.rejected_clients, 80 - reserve);
        // root (this process) subscribes and gets the stream
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          await conn.write(
            new TextEncoder().encode(`GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
          );
          let text = "";
          const buf = new Uint8Array(4096);
          while (!text.includes("aegisbpf events")) {
            const n = await conn.read(buf);
            if (n === null) break;
            text += new TextDecoder().decode(buf.subarray(0, n));
          }
          assert.match(text, /^HTTP\/1\.1 200 /);
          assert.match(text, /aegisbpf events/);
          assert.equal(hub.stats().clients, reserve + 1);
        } finally {
          conn.close();
        }
        const [health] = await rawGet(port, "/health");
        assert.equal(health, 200);
        writeStdout(
          `\n  /events: ${s.clients} non-root subscribers held, ${s.rejected_clients} refused ` +
            `(${s.rejected_uid_quota} over the per-uid quota of ${s.max_clients_per_uid}); root subscribed\n`,
        );
      } finally {
        for (const h of holders) h.kill();
      }
    });
  },
);
