import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { StartClock } from "./start_clock.ts";

Deno.test("StartClock: one entry per phase in order, summing to the total", async () => {
  const c = new StartClock();
  c.mark("load");
  await new Promise((r) => setTimeout(r, 20));
  c.mark("native");
  c.mark("constructor");
  const p = c.phases();
  deepStrictEqual(Object.keys(p), ["load", "native", "constructor"]);
  ok(p.native >= 15, `a 20 ms wait is in its phase: ${p.native}`);
  const sum = Object.values(p).reduce((a, b) => a + b, 0);
  ok(Math.abs(sum - c.total()) <= 3, `${sum} vs ${c.total()} (rounding per phase)`);
  strictEqual(Object.getPrototypeOf(p), Object.prototype);
});
