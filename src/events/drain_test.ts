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
