import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { AegisEvent } from "../contracts.ts";
import type { ExecRecord } from "../events/decode.ts";
import { EventEnvelope, eventJson } from "../events/envelope.ts";
import { recordToEvent } from "../events/json.ts";
import { telemetryLineWriter } from "../events/telemetry_line.ts";
import { DaemonBus } from "./outputs.ts";

const exec: ExecRecord = {
  kind: "exec",
  pid: 7,
  tid: 7,
  ppid: 1,
  uid: 0,
  cgid: 1,
  startTime: 5,
  parentStartTime: 1,
  comm: "sh",
  ktimeNs: 9,
};

function bus(watched: boolean) {
  const env = new EventEnvelope({ host: "h", agentVersion: "v", clockOffsetNs: 0n, idPrefix: "a" });
  const lines: string[] = [];
  const objects: AegisEvent[] = [];
  const hub = {
    unwatched: !watched,
    counted: 0,
    publishedUnwatched() {
      this.counted++;
    },
  };
  const sinkTarget = { emit: (ev: AegisEvent) => lines.push(eventJson(ev)) };
  const hubTarget = { emit: (ev: AegisEvent) => objects.push(ev) };
  const b = new DaemonBus(env, [sinkTarget, hubTarget], {
    line: telemetryLineWriter(env),
    write: (t) => lines.push(t),
    hub,
  });
  return { b, lines, objects, hub };
}

Deno.test("DaemonBus.emitRecord: the fast line while no subscriber watches, the object else", () => {
  const quiet = bus(false);
  quiet.b.emitRecord(exec, () => recordToEvent(exec));
  const watched = bus(true);
  watched.b.emitRecord(exec, () => recordToEvent(exec));
  strictEqual(quiet.objects.length, 0, "no object built for nobody");
  strictEqual(quiet.hub.counted, 1, "still counted as published");
  strictEqual(watched.objects.length, 1, "a subscriber gets the event");
  deepStrictEqual(quiet.lines, watched.lines, "the same line either way");
  strictEqual(quiet.b.emitted, 1);
  strictEqual(watched.b.emitted, 1);
});

Deno.test("DaemonBus.emitRecord: a record with no fast form is emitted as an object", () => {
  const quiet = bus(false);
  const open = { ...exec, kind: "open" as const, path: "/x", flags: 0, dfd: -100 };
  quiet.b.emitRecord(open, () => recordToEvent(open));
  strictEqual(quiet.objects.length, 1);
  strictEqual(JSON.parse(quiet.lines[0]).type, "open");
});
