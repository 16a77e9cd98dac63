import { deepStrictEqual, match, ok, strictEqual, throws } from "node:assert/strict";
import { EventEnvelope, eventJson, rfc3339FromNs } from "./envelope.ts";

const env = (o: Partial<ConstructorParameters<typeof EventEnvelope>[0]> = {}) =>
  new EventEnvelope({
    host: "node-1",
    agentVersion: "1.2.3",
    clockOffsetNs: 1_700_000_000_000_000_000n,
    now: () => 1_800_000_000_123,
    idPrefix: "00ff",
    ...o,
  });

Deno.test("envelope: rfc3339FromNs keeps all nine digits", () => {
  strictEqual(rfc3339FromNs(1_700_000_000_123_456_789n), "2023-11-14T22:13:20.123456789Z");
  strictEqual(rfc3339FromNs(5n), "1970-01-01T00:00:00.000000005Z");
  strictEqual(rfc3339FromNs(-1n), "1970-01-01T00:00:00.000000000Z");
});

Deno.test("envelope: a kernel event's timestamp is its ktime_ns plus the clock offset", () => {
  const e = env().stamp({ type: "exec", ktime_ns: 42_000_000_007, pid: 1 });
  strictEqual(e.timestamp, "2023-11-14T22:14:02.000000007Z");
  // a bigint ktime (past 2^53) too
  strictEqual(
    env().stamp({ type: "exec", ktime_ns: 2n ** 60n }).timestamp,
    rfc3339FromNs(2n ** 60n + 1_700_000_000_000_000_000n),
  );
});

Deno.test("envelope: common fields first, in order; the agent's own events take the clock", () => {
  const v = env();
  const a = v.stamp({ type: "state_change", state: "ENFORCE" });
  deepStrictEqual(Object.keys(a), [
    "timestamp",
    "type",
    "event_id",
    "host",
    "agent_version",
    "state",
  ]);
  strictEqual(a.timestamp, "2027-01-15T08:00:00.123000000Z");
  strictEqual(a.event_id, "00ff-1");
  strictEqual(a.host, "node-1");
  strictEqual(a.agent_version, "1.2.3");
  strictEqual(v.stamp({ type: "x" }).event_id, "00ff-2", "a counter");
  // before the offset is known, a kernel event takes the clock too
  strictEqual(
    env({ clockOffsetNs: null }).stamp({ type: "exec", ktime_ns: 5 }).timestamp,
    "2027-01-15T08:00:00.123000000Z",
  );
});

Deno.test("envelope: ids are unique across agents (random prefix); an event cannot forge the fields", () => {
  const p1 = new EventEnvelope({ host: "h", agentVersion: "v", clockOffsetNs: 0n });
  const p2 = new EventEnvelope({ host: "h", agentVersion: "v", clockOffsetNs: 0n });
  match(p1.idPrefix, /^[0-9a-f]{16}$/);
  ok(p1.idPrefix !== p2.idPrefix);
  const e = env().stamp({
    type: "t",
    host: "evil",
    event_id: "x",
    timestamp: "y",
    agent_version: "z",
  });
  deepStrictEqual(
    [e.host, e.event_id, e.agent_version, e.timestamp],
    ["node-1", "00ff-1", "1.2.3", "2027-01-15T08:00:00.123000000Z"],
  );
  throws(() => env({ idPrefix: "XYZ" }), RangeError);
});

Deno.test("envelope: an own __proto__ key stays data, never a prototype", () => {
  const ev = JSON.parse('{"type":"t","__proto__":{"polluted":1},"host":"h"}');
  const e = env().stamp(ev);
  strictEqual((e as Record<string, unknown>).polluted, undefined);
  strictEqual(({} as Record<string, unknown>).polluted, undefined);
  ok(Object.hasOwn(e, "__proto__"));
  match(eventJson(e), /"__proto__":\{"polluted":1\}/);
});

Deno.test("eventJson: bigints are exact integers, numbers stay numbers", () => {
  strictEqual(
    eventJson({ a: 2n ** 64n - 1n, b: 7, c: "8" }),
    '{"a":18446744073709551615,"b":7,"c":"8"}',
  );
});

Deno.test("envelope: the number path of wallTime agrees with the exact bigint arithmetic", () => {
  for (const off of [0n, 1_700_000_000_999_999_999n, 1_700_000_000_000_000_001n, -5n]) {
    const v = env({ clockOffsetNs: off });
    for (let i = 0; i < 2000; i++) {
      const k = Math.floor(Math.random() * 2 ** 53);
      strictEqual(v.wallTime(k), rfc3339FromNs(BigInt(k) + off), `k ${k} off ${off}`);
      const small = Math.floor(Math.random() * 1e10);
      strictEqual(v.wallTime(small), rfc3339FromNs(BigInt(small) + off), `k ${small} off ${off}`);
    }
  }
});
