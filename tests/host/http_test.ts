/**
 * Host tier: the HTTP API over real TCP on 127.0.0.1 (ephemeral port).
 *
 * An /events subscriber that connects and never reads, while events are
 * published at ≈ 50 k/s, must be cut off (counted as "slow") without
 * holding up anything else: /health keeps answering 200 throughout. The
 * latency of /health before and during the flood is printed; the test
 * asserts only a generous bound (every answer 200 within 5 s), timing
 * targets belong to bench/http.
 */
import assert from "node:assert/strict";
import { createApp } from "../../src/http/app.ts";
import { startHttpServer } from "../../src/http/serve.ts";
import { SseHub } from "../../src/http/sse.ts";
import { writeStdout } from "../../src/log.ts";

const RATE_PER_TICK = 500; // every 10 ms: ≈ 50 k events/s
const PAYLOAD = "p".repeat(160);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function summary(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b);
  return `n=${s.length} p50=${percentile(s, 0.5).toFixed(2)}ms p99=${
    percentile(s, 0.99).toFixed(2)
  }ms max=${s[s.length - 1].toFixed(2)}ms`;
}

/** One /health round trip; fails the test on a timeout or a status other than 200. */
async function health(base: string): Promise<number> {
  const t0 = performance.now();
  const r = await fetch(`${base}/health`, { signal: AbortSignal.timeout(5000) });
  const body = await r.json();
  const ms = performance.now() - t0;
  assert.equal(r.status, 200);
  assert.deepEqual(body, { ok: true });
  return ms;
}

Deno.test("an /events client that never reads is cut off while /health keeps answering", async () => {
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
  const base = `http://127.0.0.1:${srv.addr.port}`;
  let publisher: ReturnType<typeof setInterval> | undefined;
  const stuck = await Deno.connect({ hostname: "127.0.0.1", port: srv.addr.port });
  try {
    const before: number[] = [];
    for (let i = 0; i < 200; i++) before.push(await health(base));

    await stuck.write(
      new TextEncoder().encode(`GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`),
    );
    for (let i = 0; i < 500 && hub.stats().clients === 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    assert.equal(hub.stats().clients, 1, "the never-reading client subscribed");

    let seq = 0;
    const t0 = performance.now();
    publisher = setInterval(() => {
      for (let i = 0; i < RATE_PER_TICK; i++) {
        hub.publish({ type: "exec", seq: seq++, comm: "loadgen", path: PAYLOAD });
      }
    }, 10);

    const during: number[] = [];
    let cutAt = -1;
    let afterCut = 0;
    while (afterCut < 200) {
      during.push(await health(base));
      if (cutAt < 0 && hub.stats().dropped_clients.slow > 0) cutAt = performance.now() - t0;
      if (cutAt >= 0) afterCut++;
      assert.ok(performance.now() - t0 < 60_000, "the slow client was not cut within 60 s");
    }
    clearInterval(publisher);
    publisher = undefined;
    const published = seq;

    const s = hub.stats();
    assert.equal(s.dropped_clients.slow, 1);
    assert.equal(s.clients, 0);
    assert.equal(s.published, published);

    // the server closed the connection: reading drains what the kernel
    // buffered, then ends (EOF or reset), within a bounded time
    let buffered = 0;
    const buf = new Uint8Array(1 << 20);
    const readDeadline = performance.now() + 10_000;
    let ended = false;
    while (!ended && performance.now() < readDeadline) {
      try {
        const n = await stuck.read(buf);
        if (n === null) ended = true;
        else buffered += n;
      } catch (e) {
        if (!(e instanceof Deno.errors.ConnectionReset)) throw e;
        ended = true;
      }
    }
    assert.ok(ended, "the cut-off connection was closed by the server");

    writeStdout(
      `\n  /health before the flood: ${summary(before)}\n` +
        `  /health during the flood: ${summary(during)}\n` +
        `  slow client cut ${cutAt.toFixed(0)} ms after publishing began ` +
        `(${published} events published at ≈ ${RATE_PER_TICK * 100}/s; ` +
        `${(buffered / 1048576).toFixed(1)} MiB were in socket buffers)\n`,
    );
  } finally {
    if (publisher !== undefined) clearInterval(publisher);
    stuck.close();
    await srv.close();
  }
});
