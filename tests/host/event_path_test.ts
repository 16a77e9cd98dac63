/**
 * Tier 2 (root): kernel tracepoints → ring buffer → shim batch drain →
 * decoded TypeScript records, on the host kernel.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import { TraceSet } from "../../src/bpf/trace.ts";
import type { KernelRecord, OpenRecord } from "../../src/events/decode.ts";
import { EventDrain } from "../../src/events/drain.ts";

const RUNTIME = await Deno.makeTempDir({ prefix: "aegis-rt-" });
globalThis.addEventListener("unload", () => Deno.removeSync(RUNTIME, { recursive: true }));

Deno.test("openat records of this process arrive decoded, none lost, even through a tiny buffer", async () => {
  using shim = await openEmbeddedShim(`${RUNTIME}/a`);
  using trace = TraceSet.load(shim, await bpfObjectBytes(), { opens: true, tgid: Deno.pid });
  using ring = shim.openRing(trace.eventsFd());
  const dir = await Deno.makeTempDir({ prefix: "aegis-ev-" });
  const target = `${dir}/probe-${crypto.randomUUID().slice(0, 8)}`;
  const N = 300;
  for (let i = 0; i < N; i++) {
    try {
      Deno.openSync(target).close();
    } catch { /* ENOENT is fine: the syscall still ran */ }
  }
  // 512 bytes hold 3 open records (8 + 136 each): many drains, records
  // that do not fit must stay in the ring for the next call.
  const seen: OpenRecord[] = [];
  const drain = new EventDrain(ring, (r) => {
    if (r.kind === "open" && r.path === target) seen.push(r);
  }, { bufferBytes: 512, maxBatchesPerTick: 100000 });
  drain.drainNow();
  await Deno.remove(dir, { recursive: true });
  strictEqual(
    seen.length,
    N,
    `saw ${seen.length} of ${N} opens (rejected ${drain.stats.rejected})`,
  );
  strictEqual(drain.stats.rejected, 0);
  ok(drain.stats.batches >= N / 3, `batches ${drain.stats.batches}`);
  const r = seen[0];
  strictEqual(r.pid, Deno.pid);
  strictEqual(r.uid, 0);
  ok(r.ktimeNs > 0 && r.startTime > 0);
  deepStrictEqual(trace.counters().ringbufDrops, 0n);
  ok(trace.counters().events >= BigInt(N));
});

Deno.test("an exec record names the new program and its parent", async () => {
  using shim = await openEmbeddedShim(`${RUNTIME}/b`);
  using trace = TraceSet.load(shim, await bpfObjectBytes(), { opens: false, tgid: 0 });
  using ring = shim.openRing(trace.eventsFd());
  const child = new Deno.Command("/bin/true").spawn();
  const { success } = await child.status;
  ok(success);
  const execs: KernelRecord[] = [];
  const drain = new EventDrain(ring, (r) => {
    if (r.kind === "exec" && r.pid === child.pid) execs.push(r);
  });
  drain.drainNow();
  strictEqual(execs.length, 1);
  strictEqual(execs[0].comm, "true");
  strictEqual(execs[0].ppid, Deno.pid);
});

Deno.test("disabling emission stops records without detaching", async () => {
  using shim = await openEmbeddedShim(`${RUNTIME}/c`);
  using trace = TraceSet.load(shim, await bpfObjectBytes(), { opens: true, tgid: Deno.pid });
  using ring = shim.openRing(trace.eventsFd());
  const target = `/nonexistent-aegis-${crypto.randomUUID().slice(0, 8)}`;
  const tryOpen = () => {
    try {
      Deno.openSync(target).close();
    } catch { /* ENOENT expected; the syscall still ran */ }
  };
  let n = 0;
  const drain = new EventDrain(ring, (r) => {
    if (r.kind === "open" && r.path === target) n++;
  });
  trace.setEnabled(false);
  tryOpen();
  drain.drainNow();
  strictEqual(n, 0);
  trace.setEnabled(true);
  tryOpen();
  drain.drainNow();
  strictEqual(n, 1);
});

Deno.test("a buffer smaller than one record grows instead of stalling", async () => {
  using shim = await openEmbeddedShim(`${RUNTIME}/d`);
  using trace = TraceSet.load(shim, await bpfObjectBytes(), { opens: true, tgid: Deno.pid });
  using ring = shim.openRing(trace.eventsFd());
  const target = `/nonexistent-aegis-${crypto.randomUUID().slice(0, 8)}`;
  for (let i = 0; i < 5; i++) {
    try {
      Deno.openSync(target).close();
    } catch { /* expected */ }
  }
  let n = 0;
  const drain = new EventDrain(ring, (r) => {
    if (r.kind === "open" && r.path === target) n++;
  }, { bufferBytes: 64 });
  drain.drainNow();
  strictEqual(n, 5);
  ok(drain.stats.bufferGrowths >= 1);
});
