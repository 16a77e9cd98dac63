import assert from "node:assert/strict";
import { NativeCallError } from "../errors.ts";
import type { NativeRing } from "../native/mod.ts";
import { EventDrain } from "./drain.ts";

/** A ring whose drain() answers from a script of results or errors. */
function fakeRing(script: (() => { bytes: number; records: number })[]): NativeRing {
  let i = 0;
  return {
    drain: () => (script[Math.min(i++, script.length - 1)])(),
  } as unknown as NativeRing;
}

Deno.test("drain: a ring that fails to read stops the timer and reports once", async () => {
  const failures: unknown[] = [];
  let calls = 0;
  const ring = fakeRing([() => {
    calls++;
    throw new NativeCallError("aegis_ring_drain", 5, "EIO");
  }]);
  const d = new EventDrain(ring, () => {}, { intervalMs: 1, onFailure: (e) => failures.push(e) });
  d.start();
  await new Promise((r) => setTimeout(r, 30));
  assert.equal(failures.length, 1, "reported once, not retried in a loop");
  assert.equal(calls, 1);
  assert.ok(failures[0] instanceof NativeCallError);
});

Deno.test("drain: ready() false leaves records in the ring", () => {
  let calls = 0;
  const ring = fakeRing([() => {
    calls++;
    return { bytes: 0, records: 0 };
  }]);
  let ready = false;
  const d = new EventDrain(ring, () => {}, { ready: () => ready });
  assert.equal(d.drainNow(), 0);
  assert.equal(calls, 0, "not read while the consumer is saturated");
  ready = true;
  d.drainNow();
  assert.equal(calls, 1);
});

/** A ring with queued record counts; wait() resolves when a record is pushed or on timeout. */
function waitableRing() {
  const queue: [number, number][] = [];
  let wake: ((v: boolean) => void) | null = null;
  let waits = 0;
  let failWait: Error | null = null;
  const ring = {
    drain: () => {
      const [n, bytes] = queue.shift() ?? [0, 0];
      return { bytes, records: n };
    },
    wait: (ms: number): Promise<boolean> => {
      waits++;
      if (failWait) return Promise.reject(failWait);
      return new Promise<boolean>((res) => {
        const t = setTimeout(() => {
          wake = null;
          res(false);
        }, ms);
        wake = (v) => {
          clearTimeout(t);
          wake = null;
          res(v);
        };
      });
    },
  } as unknown as NativeRing;
  return {
    ring,
    push(n: number, bytes = 0) {
      queue.push([n, bytes]);
      wake?.(true);
    },
    get waits() {
      return waits;
    },
    get waiting() {
      return wake !== null;
    },
    failNextWait(e: Error) {
      failWait = e;
    },
  };
}

Deno.test("drain: an empty ring sleeps in wait(), a record wakes it at once", async () => {
  const r = waitableRing();
  const d = new EventDrain(r.ring, () => {}, { intervalMs: 1, idleWaitMs: 5_000 });
  d.start();
  await new Promise((res) => setTimeout(res, 20));
  assert.equal(r.waits, 1, "one wait, no ticking while empty");
  assert.ok(r.waiting);
  const ticks = d.stats.ticks;
  r.push(3);
  await new Promise((res) => setTimeout(res, 20));
  assert.equal(d.stats.records, 3, "the pushed records were read without waiting 5 s");
  assert.ok(d.stats.ticks > ticks);
  assert.equal(d.stats.idleWaits, 2, "back to sleep once the ring is empty again");
  d.stop();
  r.push(0); // the wait returns (as a real one does at its timeout)
  await d.settled();
  const after = d.stats.ticks;
  await new Promise((res) => setTimeout(res, 10));
  assert.equal(d.stats.ticks, after, "no tick after stop");
});

Deno.test("drain: a wake-up drains after the batch window, not per record", async () => {
  const r = waitableRing();
  const d = new EventDrain(r.ring, () => {}, {
    intervalMs: 1,
    idleWaitMs: 5_000,
    batchWindowMs: 60,
  });
  d.start();
  await new Promise((res) => setTimeout(res, 10));
  const ticks = d.stats.ticks;
  r.push(2);
  await new Promise((res) => setTimeout(res, 20));
  assert.equal(d.stats.ticks, ticks, "no drain inside the window");
  assert.equal(d.stats.records, 0);
  await new Promise((res) => setTimeout(res, 80));
  assert.equal(d.stats.records, 2, "drained once the window ended");
  d.stop();
  r.push(0);
  await d.settled();
});

Deno.test("drain: a trickle sleeps in the kernel at once, a full batch ticks again", async () => {
  const r = waitableRing();
  const d = new EventDrain(r.ring, () => {}, {
    bufferBytes: 1024, // low water: 128 bytes
    intervalMs: 1,
    idleWaitMs: 5_000,
    batchWindowMs: 1,
  });
  d.start();
  await new Promise((res) => setTimeout(res, 10));
  let ticks = d.stats.ticks;
  r.push(5, 50);
  await new Promise((res) => setTimeout(res, 40));
  assert.equal(d.stats.records, 5);
  assert.equal(d.stats.ticks - ticks, 1, "one drain, then straight back to sleep");
  assert.equal(d.stats.idleWaits, 2);
  ticks = d.stats.ticks;
  r.push(5, 500);
  await new Promise((res) => setTimeout(res, 40));
  assert.equal(d.stats.records, 10);
  assert.equal(d.stats.ticks - ticks, 2, "more may follow: one more tick finds the ring empty");
  assert.equal(d.stats.idleWaits, 3);
  d.stop();
  r.push(0);
  await d.settled();
});

Deno.test("drain: idleWaitMs 0 never calls wait(); a failing wait is reported once", async () => {
  const r = waitableRing();
  const d = new EventDrain(r.ring, () => {}, { intervalMs: 1 });
  d.start();
  await new Promise((res) => setTimeout(res, 15));
  d.stop();
  assert.equal(r.waits, 0);
  assert.ok(d.stats.ticks > 2, "ticks on the timer instead");

  const r2 = waitableRing();
  r2.failNextWait(new NativeCallError("aegis_ring_wait", 9, "EBADF"));
  const failures: unknown[] = [];
  const d2 = new EventDrain(r2.ring, () => {}, {
    intervalMs: 1,
    idleWaitMs: 100,
    onFailure: (e) => failures.push(e),
  });
  d2.start();
  await new Promise((res) => setTimeout(res, 20));
  await d2.settled();
  assert.equal(failures.length, 1);
  assert.equal(r2.waits, 1, "not retried in a loop");
  d2.stop();
});
