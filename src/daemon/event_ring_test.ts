import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { AegisEvent } from "../contracts.ts";
import type { KernelRecord } from "../events/decode.ts";
import { execRecord, fileBlock as fb, netBlock as nb } from "../events/records_testing.ts";
import { EventEnvelope } from "../events/envelope.ts";
import { EventLine } from "../events/schema.ts";
import { BLOCK_KEYS, type BlockRecord, EventVolume } from "../events/volume.ts";
import { NetBlockCounter } from "../metrics/render.ts";
import { recordSink, type SinkInputs } from "./event_ring.ts";
import { DaemonBus } from "./outputs.ts";

const at = { pid: 10, ktimeNs: 1_000_000 };
const fileBlock = fb(at);
const netBlock = nb(at);
const exec = execRecord(at);

/** recordSink over a real bus (events collected), real counters, a fake clock. */
function sink(volume: { sampleRate?: number; dedupWindowMs?: number }, own = -1) {
  const clock = { t: 0 };
  const env = new EventEnvelope({ host: "h", agentVersion: "v", clockOffsetNs: 0n, idPrefix: "a" });
  const events: AegisEvent[] = [];
  const bus = new DaemonBus(env, [{ emit: (e) => events.push(e) }]);
  const observed: KernelRecord[] = [];
  const inputs: SinkInputs = {
    outputs: {
      bus,
      netBlocks: new NetBlockCounter(),
      cgroups: { resolve: () => "/test.slice" },
      volume: new EventVolume<BlockRecord>({ ...volume, now: () => clock.t }, BLOCK_KEYS),
    },
    rulePaths: { pathOf: () => null },
    policy: { observeBlock: (r) => observed.push(r) },
    // the proof's own records: those of pid `own`
    status: { proofs: { isOwnRecord: (r) => r.pid === own } },
  };
  return { feed: recordSink(inputs), events, observed, clock, inputs };
}

Deno.test("recordSink: the volume controls thin block lines; every counter still counts", () => {
  const s = sink({ sampleRate: 2, dedupWindowMs: 1000 }, 666);
  for (let i = 0; i < 10; i++) {
    s.clock.t = i;
    s.feed({ ...fileBlock, pid: 100 + i });
    s.feed({ ...netBlock, pid: 100 + i });
    s.feed({ ...exec, pid: 100 + i });
  }
  s.feed({ ...fileBlock, pid: 666 }); // the proof's own deny
  const types = s.events.map((e) => e.type);
  // one line per block key (the first; the rest sampled out or folded), every exec, the self_test
  deepStrictEqual(types.filter((t) => t !== "exec"), ["block", "net_connect_block", "self_test"]);
  strictEqual(types.filter((t) => t === "exec").length, 10);
  strictEqual(s.observed.length, 30, "the block tally saw every record but the proof's");
  strictEqual(s.inputs.outputs.netBlocks.counts.block.ip, 10, "network counter: all 10");
  const v = s.inputs.outputs.volume;
  deepStrictEqual(v.stats, { sampledOut: 10, folded: 0, untracked: 0 });
  strictEqual(v.pending, 2);
  // the sample rate is on every block line
  strictEqual(s.events[0].sample_rate, 2);
  strictEqual(s.events.at(-1)!.sample_rate, undefined, "self_test: untouched");
});

Deno.test("recordSink: a folded count reaches a line, which validates against the event schema", () => {
  const s = sink({ dedupWindowMs: 1000 });
  s.feed(fileBlock);
  s.clock.t = 10;
  s.feed({ ...fileBlock, pid: 11, ktimeNs: 2_000_000 });
  s.feed({ ...fileBlock, pid: 12, ktimeNs: 3_000_000 });
  s.clock.t = 1500;
  s.feed({ ...fileBlock, pid: 13, ktimeNs: 4_000_000 });
  deepStrictEqual(s.events.map((e) => [e.pid, e.folded, e.folded_since]), [
    [10, undefined, undefined],
    [13, 2, "1970-01-01T00:00:00.002000000Z"],
  ]);
  for (const e of s.events) {
    const parsed = EventLine.safeParse(e);
    ok(parsed.success, JSON.stringify(parsed.error?.issues));
  }
});

Deno.test("recordSink: volume controls off: every record is a line, as before", () => {
  const s = sink({});
  for (let i = 0; i < 5; i++) s.feed(fileBlock);
  strictEqual(s.events.length, 5);
  ok(s.events.every((e) => !("folded" in e) && !("sample_rate" in e)));
});
