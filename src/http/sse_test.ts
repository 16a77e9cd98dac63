import assert from "node:assert/strict";
import { AegisError } from "../errors.ts";
import { SseClientDropped, SseHub } from "./sse.ts";

const dec = new TextDecoder();

/** Read from a stream until `done(text)` holds; returns everything read. */
async function readUntil(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (text: string) => boolean,
): Promise<string> {
  let text = "";
  while (!done(text)) {
    const r = await reader.read();
    if (r.done) throw new Error(`stream ended after ${JSON.stringify(text)}`);
    text += dec.decode(r.value, { stream: true });
  }
  return text;
}

/** The JSON payloads of the `data:` lines in SSE text. */
function dataOf(text: string): unknown[] {
  return text.split("\n\n").filter((f) => f.startsWith("data: ")).map((f) =>
    JSON.parse(f.slice(6))
  );
}

async function eventually(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `timed out waiting for ${what}`);
}

Deno.test("publish fans out to every subscriber in order, serialising each event once (u64 exact)", async () => {
  const hub = new SseHub();
  const readers = [hub.subscribe(), hub.subscribe(), hub.subscribe()].map((s) => s.getReader());
  let serialised = 0;
  for (let i = 0; i < 50; i++) {
    hub.publish({
      type: "exec",
      toJSON() {
        serialised++;
        return { type: "exec", seq: i, big: 1n << 64n };
      },
    });
  }
  assert.equal(serialised, 50);
  for (const r of readers) {
    const text = await readUntil(r, (t) => dataOf(t).length === 50);
    assert.ok(text.startsWith(": aegisbpf events\n"), "hello comment first");
    // a bigint is an integer with its exact digits, not a string
    assert.ok(text.includes('"big":18446744073709551616}'), text.slice(0, 200));
    assert.deepEqual(
      dataOf(text),
      Array.from({ length: 50 }, (_, i) => ({ type: "exec", seq: i, big: 2 ** 64 })),
    );
  }
  const s = hub.stats();
  assert.equal(s.published, 50);
  assert.equal(s.delivered, 150);
  assert.equal(s.clients, 3);
  for (const r of readers) await r.cancel();
  assert.equal(hub.stats().clients, 0);
  assert.equal(hub.stats().disconnected_clients.closed, 3);
});

Deno.test("a subscriber that does not read is cut off at its queue bound; others are not", async () => {
  const hub = new SseHub({ maxQueueEvents: 5 });
  const slow = hub.subscribe().getReader();
  const fast = hub.subscribe().getReader();
  const fastText = readUntil(fast, (t) => dataOf(t).length === 6);
  for (let i = 0; i < 5; i++) {
    hub.publish({ type: "t", i });
    await new Promise((r) => setTimeout(r, 0)); // the reading subscriber drains
  }
  assert.equal(hub.stats().clients, 2, "5 queued events fit");
  hub.publish({ type: "t", i: 5 });
  const s = hub.stats();
  assert.equal(s.clients, 1);
  assert.equal(s.dropped_clients.slow, 1);
  // the cut-off stream ends with a counted, named error
  await assert.rejects(
    async () => {
      for (;;) if ((await slow.read()).done) break;
    },
    (e) => e instanceof SseClientDropped && e.reason === "slow",
  );
  const text = await fastText;
  assert.deepEqual(dataOf(text).map((e) => (e as { i: number }).i), [0, 1, 2, 3, 4, 5]);
  await fast.cancel();
});

Deno.test("the byte bound cuts a subscriber too", () => {
  const hub = new SseHub({ maxQueueBytes: 1000 });
  const s = hub.subscribe();
  hub.publish({ type: "t", pad: "x".repeat(400) });
  assert.equal(hub.stats().clients, 1);
  hub.publish({ type: "t", pad: "x".repeat(400) });
  hub.publish({ type: "t", pad: "x".repeat(400) });
  assert.equal(hub.stats().clients, 0);
  assert.equal(hub.stats().dropped_clients.slow, 1);
  assert.equal(hub.stats().published, 3);
  void s.cancel().catch(() => {});
});

Deno.test("a subscriber that reads keeps up however much is published", async () => {
  const hub = new SseHub({ maxQueueEvents: 8 });
  const r = hub.subscribe().getReader();
  let received = 0;
  let buffered = "";
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 8; i++) hub.publish({ type: "t", round, i });
    // drain what is there before publishing more
    while (received < (round + 1) * 8) {
      const chunk = await r.read();
      buffered += dec.decode(chunk.value);
      const frames = buffered.split("\n\n");
      buffered = frames.pop()!;
      received += frames.filter((f) => f.startsWith("data: ")).length;
    }
  }
  assert.equal(received, 1600);
  assert.equal(hub.stats().dropped_clients.slow, 0);
  assert.equal(hub.stats().delivered, 1600);
  await r.cancel();
});

Deno.test("keep-alive comments reach an idle subscriber; a stalled one is cut off", async () => {
  let now = 0;
  const hub = new SseHub({ keepAliveMs: 5, maxStallMs: 1000, now: () => now });
  const hold = setInterval(() => {}, 1000); // the hub's timer is unref'd: keep the test alive
  const idle = hub.subscribe().getReader();
  const stuck = hub.subscribe();
  const text = await readUntil(idle, (t) => t.includes("\n\n:\n\n"));
  assert.ok(text.endsWith(":\n\n"));
  // the stuck subscriber has its hello queued since t=0 and never reads
  assert.equal(hub.stats().clients, 2);
  now = 1000;
  await eventually(() => hub.stats().dropped_clients.stalled === 1, "the stall cut");
  assert.equal(hub.stats().clients, 1);
  // the reading one is still there (it drained, so it is not stalled)
  await readUntil(idle, (t) => t.includes(":\n\n"));
  await idle.cancel();
  void stuck.cancel().catch(() => {});
  assert.equal(hub.stats().clients, 0);
  clearInterval(hold);
});

Deno.test("the client limit refuses with SSE_CLIENT_LIMIT and frees a slot on cancel", async () => {
  const hub = new SseHub({ maxClients: 2 });
  const a = hub.subscribe();
  const b = hub.subscribe();
  assert.throws(
    () => hub.subscribe(),
    (e) => e instanceof AegisError && e.code === "SSE_CLIENT_LIMIT",
  );
  assert.equal(hub.stats().rejected_clients, 1);
  await a.cancel();
  const c = hub.subscribe();
  assert.equal(hub.stats().clients, 2);
  assert.equal(hub.stats().connected_total, 3);
  await b.cancel();
  await c.cancel();
});

Deno.test("close() ends every stream, refuses new subscribers and ignores later events", async () => {
  const hub = new SseHub();
  const waiting = hub.subscribe().getReader();
  await readUntil(waiting, (t) => t.includes("aegisbpf events"));
  const pending = waiting.read(); // now it waits for data
  const unread = hub.subscribe().getReader();
  hub.close();
  assert.deepEqual(await pending, { done: true, value: undefined }, "clean end when caught up");
  await assert.rejects(() => unread.read(), SseClientDropped);
  assert.throws(() => hub.subscribe(), (e) => e instanceof AegisError && e.code === "SSE_CLOSED");
  hub.publish({ type: "late" });
  const s = hub.stats();
  assert.equal(s.published, 0);
  assert.equal(s.disconnected_clients.shutdown, 2);
  hub.close();
});

Deno.test("an event that cannot be serialised is counted, not thrown; emit() is publish()", async () => {
  const hub = new SseHub();
  const r = hub.subscribe().getReader();
  const cyclic: Record<string, unknown> = { type: "bad" };
  cyclic.self = cyclic;
  hub.emit({ type: "bad", cyclic });
  hub.emit({ type: "good" });
  const text = await readUntil(r, (t) => t.includes("good"));
  assert.deepEqual(dataOf(text), [{ type: "good" }]);
  assert.equal(hub.stats().unserializable, 1);
  assert.equal(hub.stats().published, 2);
  await r.cancel();
});

Deno.test("options must be positive integers", () => {
  for (const bad of [0, -1, 1.5, NaN]) {
    assert.throws(
      () => new SseHub({ maxClients: bad }),
      (e) => e instanceof AegisError && e.code === "USAGE" && e.message.includes("maxClients"),
    );
  }
});

Deno.test("quotas: a non-root uid holds at most maxClientsPerUid; the root reserve stays free", () => {
  const hub = new SseHub({ maxClients: 10, maxClientsPerUid: 3, rootReserved: 2 });
  const limit = (e: unknown) => e instanceof AegisError && e.code === "SSE_CLIENT_LIMIT";
  for (let i = 0; i < 3; i++) hub.subscribe({ uid: 1000 });
  assert.throws(
    () => hub.subscribe({ uid: 1000 }),
    (e) => limit(e) && /uid 1000 already holds 3/.test(String(e)),
  );
  assert.equal(hub.stats().rejected_uid_quota, 1);
  for (let i = 0; i < 3; i++) hub.subscribe({ uid: 1001 });
  hub.subscribe({ uid: 1002 });
  hub.subscribe({ uid: 1002 });
  // 8 of 10 taken by non-root: the last 2 are root's
  assert.throws(
    () => hub.subscribe({ uid: 1003 }),
    (e) => limit(e) && /kept for root/.test(String(e)),
  );
  assert.throws(() => hub.subscribe({ uid: null }), limit, "an unknown uid is not root");
  hub.subscribe({ uid: 0 });
  hub.subscribe({ uid: 0 });
  assert.throws(() => hub.subscribe({ uid: 0 }), limit, "root is bound by maxClients too");
  assert.equal(hub.stats().clients, 10);
  hub.close();
});

Deno.test("quotas: an unsubscribe frees its uid's slot", async () => {
  const hub = new SseHub({ maxClients: 4, maxClientsPerUid: 1, rootReserved: 1 });
  const a = hub.subscribe({ uid: 1000 });
  await Promise.resolve();
  assert.throws(() => hub.subscribe({ uid: 1000 }), AegisError);
  await a.cancel();
  const b = hub.subscribe({ uid: 1000 });
  // no caller at all counts as one unknown non-root uid
  hub.subscribe();
  assert.throws(() => hub.subscribe(), AegisError);
  hub.subscribe({ uid: 7 });
  assert.throws(() => hub.subscribe({ uid: 8 }), /kept for root/);
  hub.subscribe({ uid: 0 });
  assert.equal(hub.stats().clients, 4);
  await b.cancel();
  hub.close();
});

Deno.test("quota options are checked; small hubs keep working without a reserve", () => {
  assert.throws(() => new SseHub({ maxClients: 4, rootReserved: 4 }), /rootReserved/);
  assert.throws(() => new SseHub({ maxClientsPerUid: 0 }), /maxClientsPerUid/);
  const s = new SseHub({ maxClients: 2 }).stats();
  assert.equal(s.root_reserved, 0);
  assert.equal(s.max_clients_per_uid, 2);
  const d = new SseHub().stats();
  assert.equal(d.root_reserved, 8);
  assert.equal(d.max_clients_per_uid, 8);
});

Deno.test("sse: unwatched while no one subscribes; events counted unbuilt still count as published", async () => {
  const hub = new SseHub();
  assert.equal(hub.unwatched, true);
  hub.publishedUnwatched();
  assert.equal(hub.stats().published, 1);
  const reader = hub.subscribe().getReader();
  assert.equal(hub.unwatched, false, "a subscriber watches");
  await reader.cancel();
  hub.close();
  assert.equal(hub.unwatched, true, "a closed hub sends nothing");
});
