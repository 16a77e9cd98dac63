import { deepStrictEqual, strictEqual } from "node:assert/strict";
import { exactJson } from "../util/exact_json.ts";
import { ruleForEvent } from "./live.ts";

Deno.test("ruleForEvent: a live rule's ino and cgid become exact integers; other values stay", () => {
  const rule = {
    id: 2147483648,
    spec: { kind: "path", path: "/etc/x", dev: 2049, ino: "18446744073709551615" },
  };
  strictEqual(
    exactJson(ruleForEvent(rule)),
    '{"id":2147483648,"spec":{"kind":"path","path":"/etc/x","dev":2049,"ino":18446744073709551615}}',
  );
  deepStrictEqual(ruleForEvent({ id: 1, spec: { kind: "cgroup", cgroup: "/a", cgid: "42" } }), {
    id: 1,
    spec: { kind: "cgroup", cgroup: "/a", cgid: 42 },
  });
  // not digits, out of range, no spec: left as they are
  deepStrictEqual(ruleForEvent({ id: 1, spec: { ino: "x1" } }), { id: 1, spec: { ino: "x1" } });
  deepStrictEqual(ruleForEvent({ id: 1, spec: { ino: "99999999999999999999" } }), {
    id: 1,
    spec: { ino: "99999999999999999999" },
  });
  deepStrictEqual(ruleForEvent({ id: 3 }), { id: 3 });
  strictEqual(ruleForEvent(null), null);
});
