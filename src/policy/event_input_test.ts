import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { eventFromLine, parseJsonLine } from "./event_input.ts";

const BLOCK = {
  type: "block",
  ktime_ns: "1",
  pid: 1,
  cgid: "4242",
  cgroup_path: "/a",
  comm: "cat",
  action: "BLOCK",
  hook: "file_open",
  ino: "1234",
  dev: 2049,
  path: "/x",
  rule_id: 3,
};

function parse(v: unknown) {
  return eventFromLine(typeof v === "string" ? v : JSON.stringify(v), 7);
}

Deno.test("event input: u64 fields as strings or JSON integers, above 2^53 exact", () => {
  const a = parse(BLOCK);
  ok(a.ok && a.event.surface === "file" && a.event.ino === "1234" && a.event.cgid === "4242");
  const b = parse({ ...BLOCK, ino: 1234, cgid: 4242 });
  ok(b.ok && b.event.surface === "file" && b.event.ino === "1234" && b.event.cgid === "4242");
  const big = JSON.stringify(BLOCK).replace('"1234"', "9223372036854775809");
  const c = parse(big);
  ok(c.ok && c.event.surface === "file" && c.event.ino === "9223372036854775809");
  deepStrictEqual(parseJsonLine('{"x":12345678901234567}'), { x: 12345678901234567n });
});

Deno.test("event input: the fields that may appear (timestamp, event_id, host, …) are accepted", () => {
  const r = parse({
    ...BLOCK,
    timestamp: "2026-12-01T00:00:00.000000000Z",
    event_id: "abc",
    host: "n1",
    agent_version: "0.1.0",
    path_source: "d_path",
  });
  ok(r.ok);
});

Deno.test("event input: errors name the field and the line; problems are classified", () => {
  const noIno = parse({ ...BLOCK, ino: undefined });
  ok(!noIno.ok && noIno.problem.kind === "error" && noIno.problem.line === 7);
  ok(!noIno.ok && /field "ino"/.test(noIno.problem.message), JSON.stringify(noIno));
  const neg = parse({ ...BLOCK, ino: -1 });
  ok(!neg.ok && neg.problem.kind === "error");
  const bad = parse("{not json");
  ok(!bad.ok && /invalid JSON/.test(bad.problem.message));
  const arr = parse("[1,2]");
  ok(!arr.ok && arr.problem.message === "not a JSON object");
  const st = parse({ type: "state_change" });
  ok(!st.ok && st.problem.kind === "skip");
  const unk = parse({ type: "x".repeat(500) });
  ok(!unk.ok && unk.problem.kind === "unknown_type" && unk.problem.message.length < 200);
  const addr = parse({
    ...BLOCK,
    type: "net_connect_block",
    family: "ipv4",
    addr: "2001:db8::1",
    port: 1,
    protocol: "tcp",
  });
  ok(!addr.ok && /not an ipv4 address/.test(addr.problem.message));
});

Deno.test("event input: __proto__ and constructor keys are plain data", () => {
  const r = parse('{"__proto__":{"type":"block"},"constructor":{"x":1}}');
  ok(!r.ok && /no "type"/.test(r.problem.message));
  const t = parse({ type: "constructor" });
  ok(!t.ok && t.problem.kind === "unknown_type");
  const p = parse('{"type":"__proto__"}');
  ok(!p.ok && p.problem.kind === "unknown_type");
  const withProto = parse(JSON.stringify(BLOCK).replace("{", '{"__proto__":{"rule_id":9},'));
  ok(withProto.ok && withProto.event.ruleId === 3);
  strictEqual(({} as Record<string, unknown>).rule_id, undefined);
});

Deno.test("event input: network and kernel events; exec blocks by hook", () => {
  const n = parse({
    ...BLOCK,
    type: "net_bind_block",
    family: "ipv6",
    addr: "0:0:0:0:0:ffff:a01:203",
    port: 80,
    protocol: "17",
  });
  ok(n.ok && n.event.surface === "net");
  if (n.ok && n.event.surface === "net") {
    deepStrictEqual([n.event.hook, n.event.family, n.event.proto], ["bind", 6, 17]);
  }
  const k = parse({ ...BLOCK, type: "kernel_module_block", rule_id: 0 });
  ok(k.ok && k.event.surface === "kernel" && k.event.what === "module");
  const x = parse({ ...BLOCK, hook: "bprm_check_security" });
  ok(x.ok && x.event.surface === "exec");
  const e = parse({ type: "exec", comm: "ls", cgid: 5 });
  ok(e.ok && e.event.surface === "exec" && e.event.happened === "allowed");
  const a = parse({ ...BLOCK, action: "AUDIT" });
  ok(a.ok && a.event.happened === "audited");
});

Deno.test("event input: the fast path gives what the schema gives, or leaves it to the schema", async () => {
  const { FileBlock, NetBlock, fastFileBlock, fastNetBlock } = await import("./event_input.ts");
  const NET = {
    ...BLOCK,
    type: "net_connect_block",
    family: "ipv4",
    addr: "10.0.0.1",
    port: 443,
    protocol: "tcp",
    rule_type: "cidr",
  };
  const variants: Record<string, unknown>[] = [
    {},
    { ino: 77, cgid: 5 },
    { cgroup_path: null, path: null },
    { cgroup_path: undefined, comm: undefined, pid: undefined },
    { ino: "123456789012345678901" },
    { ino: 2 ** 53 },
    { ino: -1 },
    { ino: 1.5 },
    { dev: 2 ** 32 },
    { rule_id: -1 },
    { action: "X".repeat(17) },
    { path: "p".repeat(4097) },
    { cgid: "" },
    { port: 70000, protocol: 6 },
    { family: "ipv5" },
    { hook: undefined, rule_type: undefined },
  ];
  let fastHits = 0;
  for (const v of variants) {
    for (
      const [fast, schema, base] of [[fastFileBlock, FileBlock, BLOCK], [
        fastNetBlock,
        NetBlock,
        NET,
      ]] as const
    ) {
      const o = { ...base, ...v };
      const f = (fast as (o: Record<string, unknown>) => unknown)(o);
      const s = schema.safeParse(o);
      if (f !== null) {
        fastHits++;
        ok(s.success, `fast accepted what the schema refuses: ${JSON.stringify(v)}`);
        deepStrictEqual(f, s.data);
      }
    }
  }
  ok(fastHits >= 8, `fast path used ${fastHits} times`);
});
