import { strictEqual } from "node:assert/strict";
import type { AegisEvent } from "../contracts.ts";
import type { ExecArgvRecord, ExecRecord, KernelRecord } from "./decode.ts";
import { EventEnvelope } from "./envelope.ts";
import { type CgroupResolver, recordToEvent } from "./json.ts";
import { telemetryLineWriter } from "./telemetry_line.ts";
import { eventJson } from "./envelope.ts";

function envelopes(offset: bigint | null) {
  const o = { host: 'node "7"\n', agentVersion: "0.9.0+x", clockOffsetNs: offset, idPrefix: "abc" };
  return [new EventEnvelope(o), new EventEnvelope(o)] as const;
}

let seed = 11;
const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) >>> 0) % n;
const PIECES = [
  "a",
  "ü",
  '"',
  "\\",
  "\n",
  "\u0001",
  "\u2028",
  "😀",
  "__proto__",
  "constructor",
  " ",
  "/",
];
const str = (max: number) =>
  Array.from({ length: rnd(max) }, () => PIECES[rnd(PIECES.length)]).join("");
const u32 = () => rnd(2) ? rnd(1000) : 0xffffffff - rnd(3);
const u53 = () => rnd(2) ? rnd(1e6) : Number.MAX_SAFE_INTEGER - rnd(3);

let previous: Omit<ExecRecord, "kind"> | null = null;

/** A random exec or exec_argv record; half of them of the previous record's process. */
function randomRecord(): ExecRecord | ExecArgvRecord {
  const proc = previous !== null && rnd(2) ? { ...previous, ktimeNs: u53() } : {
    pid: u32(),
    tid: u32(),
    ppid: u32(),
    uid: u32(),
    cgid: u53(),
    startTime: u53(),
    parentStartTime: u53(),
    comm: str(6),
    ktimeNs: u53(),
  };
  previous = proc;
  if (rnd(2)) return { kind: "exec", ...proc };
  const argv = Array.from({ length: rnd(5) }, () => str(4));
  return { kind: "exec_argv", ...proc, argv, truncated: rnd(2) === 1, totalBytes: u32() };
}

const cgroups: CgroupResolver = {
  resolve: (id) => (Number(id) % 3 === 0 ? null : `/sys/"x"/${id}`),
};

Deno.test("telemetry line: the same text as stamping recordToEvent() and serializing it", () => {
  const [a, b] = envelopes(1_700_000_000_123_456_789n);
  const fast = telemetryLineWriter(a, cgroups);
  for (let i = 0; i < 3_000; i++) {
    const r = randomRecord();
    const want = eventJson(b.stamp(recordToEvent(r, cgroups) as AegisEvent));
    strictEqual(fast(r), want, JSON.stringify(r));
  }
});

Deno.test("telemetry line: no cgroup resolver gives an empty cgroup_path, as the generic path", () => {
  const [a, b] = envelopes(5n);
  const r = randomRecord();
  strictEqual(telemetryLineWriter(a)(r), eventJson(b.stamp(recordToEvent(r) as AegisEvent)));
});

Deno.test("telemetry line: other kinds, bigints and an unknown clock take the generic path", () => {
  const [a] = envelopes(5n);
  const fast = telemetryLineWriter(a);
  const exec: ExecRecord = {
    kind: "exec",
    pid: 1,
    tid: 1,
    ppid: 0,
    uid: 0,
    cgid: 1,
    startTime: 2n ** 60n,
    parentStartTime: 0,
    comm: "x",
    ktimeNs: 1,
  };
  strictEqual(fast(exec), null, "a bigint start_time");
  strictEqual(fast({ ...exec, startTime: 1, ktimeNs: 2n ** 64n - 1n }), null, "a bigint ktime");
  const open = { ...exec, startTime: 1, kind: "open", path: "/x", flags: 0, dfd: -100 };
  strictEqual(fast(open as unknown as KernelRecord), null, "an open record");
  const [c] = envelopes(null);
  strictEqual(telemetryLineWriter(c)({ ...exec, startTime: 1 }), null, "clock offset unknown");
  // the generic path then numbers on: ids stay unique and in order
  const [d] = envelopes(5n);
  const f2 = telemetryLineWriter(d);
  const first = JSON.parse(f2({ ...exec, startTime: 1 })!).event_id;
  d.stamp({ type: "x" } as AegisEvent);
  const third = JSON.parse(f2({ ...exec, startTime: 1 })!).event_id;
  strictEqual(first, "abc-1");
  strictEqual(third, "abc-3");
});
