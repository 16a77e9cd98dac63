import { deepStrictEqual, strictEqual } from "node:assert/strict";
import type { EventSink } from "../events/sink.ts";
import { SighupHandler } from "./sighup.ts";

function sink(spec: string): { sink: EventSink; reopened: () => number } {
  let reopened = 0;
  const fake = { spec, reopen: () => void reopened++ };
  return { sink: fake as unknown as EventSink, reopened: () => reopened };
}

Deno.test("sighup: reopens the sink; --policy is applied again only once the start applied it", () => {
  const s = sink("file:/var/log/aegis.jsonl");
  const h = new SighupHandler(s.sink, "/etc/aegisbpf/policy.conf");
  const applied: string[] = [];
  h.onSignal(); // while starting: said in the log, nothing applied
  strictEqual(applied.length, 0);
  h.reapplyWith(() => Promise.resolve(void applied.push("policy")));
  h.onSignal();
  strictEqual(s.reopened(), 2);
  deepStrictEqual(applied, ["policy"]);
});

Deno.test("sighup: without --policy only the sink is reopened", () => {
  const s = sink("stdout");
  const h = new SighupHandler(s.sink, undefined);
  let applied = 0;
  h.reapplyWith(() => Promise.resolve(void applied++));
  h.onSignal();
  strictEqual(s.reopened(), 1);
  strictEqual(applied, 0);
});
