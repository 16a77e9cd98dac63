import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_ACT_KILL,
  AEGIS_ACT_TERM,
  AEGIS_HOOK_BPRM_CHECK,
  AEGIS_HOOK_BPRM_HASH,
  AEGIS_HOOK_FILE_OPEN,
  AEGIS_HOOK_INODE_COPY_UP,
  AEGIS_HOOK_SOCKET_BIND,
  AEGIS_HOOK_SOCKET_CONNECT,
  AEGIS_HOOK_SOCKET_SENDMSG,
  AEGIS_HOOK_TP_OPENAT,
  AEGIS_RT_IP_PORT,
} from "../bpf/abi_gen.ts";
import type { KernelRecord, ProcInfo } from "./decode.ts";
import { EventEnvelope, eventJson } from "./envelope.ts";
import { eventLineWriter } from "./format.ts";
import { recordToEvent } from "./json.ts";
import { OcsfEvent, toOcsf } from "./ocsf.ts";

const OFFSET = 1_700_000_000_000_000_000n;
const env = () =>
  new EventEnvelope({
    host: "node-1",
    agentVersion: "0.9.0",
    clockOffsetNs: OFFSET,
    idPrefix: "ab",
    now: () => 1_800_000_000_000,
  });
const proc: ProcInfo = {
  pid: 10,
  tid: 11,
  ppid: 1,
  uid: 1000,
  cgid: 7,
  startTime: 5_000_000_000,
  parentStartTime: 1_000,
  comm: "cat",
};
const fileBlock = (hook: number, action: number, path = "/etc/shadow"): KernelRecord => ({
  ...proc,
  kind: "file_block",
  ktimeNs: 9_000_000_001,
  ino: 99,
  dev: 8 << 20,
  ruleFlags: 1,
  path,
  action,
  hook,
  ruleId: 3,
});
const netBlock = (hook: number): KernelRecord => ({
  ...proc,
  kind: "net_block",
  ktimeNs: 9_000_000_001,
  family: 2,
  addr: "10.1.2.3",
  port: 443,
  proto: 6,
  ruleType: AEGIS_RT_IP_PORT,
  ruleId: 4,
  action: AEGIS_ACT_BLOCK,
  hook,
});

function mapped(r: KernelRecord) {
  const v = env();
  const o = toOcsf(v.stamp(recordToEvent(r)), OFFSET);
  return OcsfEvent.parse(JSON.parse(eventJson(o)));
}

Deno.test("ocsf: exec is Process Activity / Launch with the actor process", () => {
  const o = mapped({ ...proc, kind: "exec", ktimeNs: 9_000_000_001 });
  strictEqual(o.class_uid, 1007);
  strictEqual(o.category_uid, 1);
  strictEqual(o.activity_id, 1);
  strictEqual(o.type_uid, 100701);
  strictEqual(o.severity_id, 1);
  strictEqual(o.time, 1_700_000_009_000);
  strictEqual(o.time_dt, "2023-11-14T22:13:29.000000001Z");
  deepStrictEqual(o.metadata.product, {
    name: "aegisbpf",
    vendor_name: "aegisbpf",
    version: "0.9.0",
  });
  strictEqual(o.metadata.uid, "ab-1");
  strictEqual(o.metadata.version, "1.3.0");
  strictEqual(o.device.hostname, "node-1");
  if (o.class_uid !== 1007) throw new Error("class");
  strictEqual(o.actor.process.pid, 10);
  strictEqual(o.actor.process.uid, "5000000000-10");
  strictEqual(o.actor.process.created_time, 1_700_000_005_000);
  strictEqual(o.actor.process.user.uid, "1000");
  strictEqual(o.unmapped.cgid, 7, "what OCSF has no attribute for stays under unmapped");
  strictEqual(o.action_id, undefined, "no verdict on an exec");
});

Deno.test("ocsf: file blocks are File System Activity / Open; the action sets action and disposition", () => {
  const b = mapped(fileBlock(AEGIS_HOOK_FILE_OPEN, AEGIS_ACT_BLOCK));
  strictEqual(b.class_uid, 1001);
  strictEqual(b.type_uid, 100114);
  strictEqual(b.action_id, 2);
  strictEqual(b.disposition_id, 2);
  strictEqual(b.severity_id, 3);
  if (b.class_uid !== 1001) throw new Error("class");
  deepStrictEqual(b.file, {
    name: "shadow",
    path: "/etc/shadow",
    type_id: 0,
    uid: `${8 << 20}:99`,
  });
  const a = mapped(fileBlock(AEGIS_HOOK_FILE_OPEN, AEGIS_ACT_AUDIT));
  strictEqual(a.action_id, 1);
  strictEqual(a.disposition_id, 15);
  strictEqual(a.severity_id, 2);
  // a signal on a fallback tracepoint came instead of a deny
  const k = mapped(fileBlock(AEGIS_HOOK_TP_OPENAT, AEGIS_ACT_KILL));
  strictEqual(k.action_id, 99);
  strictEqual(k.disposition_id, 7);
  // on an LSM hook with one (run --enforce-signal): still denied
  const t = mapped(fileBlock(AEGIS_HOOK_FILE_OPEN, AEGIS_ACT_TERM));
  strictEqual(t.action_id, 2);
  strictEqual(t.disposition_id, 2);
  strictEqual(t.severity_id, 3);
  const c = mapped(fileBlock(AEGIS_HOOK_INODE_COPY_UP, AEGIS_ACT_BLOCK));
  strictEqual(c.type_uid, 100199);
  // no path anywhere: the file is named by dev:ino only
  const n = mapped(fileBlock(AEGIS_HOOK_FILE_OPEN, AEGIS_ACT_BLOCK, ""));
  if (n.class_uid !== 1001) throw new Error("class");
  deepStrictEqual(n.file, { name: "", type_id: 0, uid: `${8 << 20}:99` });
});

Deno.test("ocsf: a denied exec is Process Activity / Launch naming the binary", () => {
  const o = mapped(fileBlock(AEGIS_HOOK_BPRM_CHECK, AEGIS_ACT_BLOCK, "/usr/bin/nc"));
  strictEqual(o.type_uid, 100701);
  strictEqual(o.action_id, 2);
  if (o.class_uid !== 1007) throw new Error("class");
  strictEqual(o.process.file?.path, "/usr/bin/nc");
});

Deno.test("ocsf: an exec denied by content is Process Activity / Launch with the file's SHA-256", () => {
  const sha = "ab".repeat(32);
  const o = mapped({
    ...fileBlock(AEGIS_HOOK_BPRM_HASH, AEGIS_ACT_BLOCK, "/tmp/copy"),
    sha256: sha,
  } as KernelRecord);
  strictEqual(o.type_uid, 100701);
  if (o.class_uid !== 1007) throw new Error("class");
  deepStrictEqual(o.process.file?.hashes, [{ algorithm_id: 3, value: sha }]);
  strictEqual(o.unmapped.sha256, undefined, "mapped, not repeated under unmapped");
  strictEqual(o.unmapped.rule_type, "hash");
});

Deno.test("ocsf: network blocks are Network Activity: connect Open, sendmsg Traffic, bind Other", () => {
  const c = mapped(netBlock(AEGIS_HOOK_SOCKET_CONNECT));
  strictEqual(c.class_uid, 4001);
  strictEqual(c.category_uid, 4);
  strictEqual(c.type_uid, 400101);
  if (c.class_uid !== 4001) throw new Error("class");
  deepStrictEqual(c.dst_endpoint, { ip: "10.1.2.3", port: 443 });
  deepStrictEqual(c.connection_info, { protocol_name: "tcp", protocol_ver_id: 4, direction_id: 2 });
  strictEqual(mapped(netBlock(AEGIS_HOOK_SOCKET_SENDMSG)).type_uid, 400106);
  const b = mapped(netBlock(AEGIS_HOOK_SOCKET_BIND));
  strictEqual(b.type_uid, 400199);
  if (b.class_uid !== 4001) throw new Error("class");
  deepStrictEqual(b.src_endpoint, { hostname: "node-1", ip: "10.1.2.3", port: 443 });
  strictEqual(b.dst_endpoint, undefined);
});

Deno.test("ocsf: other events are Base Event / Other with every field under unmapped", () => {
  const v = env();
  const o = OcsfEvent.parse(
    toOcsf(v.stamp({ type: "state_change", state: "DEGRADED", reason_code: "X" }), OFFSET),
  );
  strictEqual(o.class_uid, 0);
  strictEqual(o.type_uid, 99);
  strictEqual(o.severity_id, 3);
  strictEqual(o.unmapped.state, "DEGRADED");
  strictEqual(o.unmapped.type, "state_change");
  // exec_argv: its own line, the arguments under unmapped
  const a = mapped({
    ...proc,
    kind: "exec_argv",
    ktimeNs: 1,
    argv: ["/bin/ls", "-l"],
    totalBytes: 11,
    truncated: false,
  });
  strictEqual(a.class_uid, 0);
  deepStrictEqual(a.unmapped.argv, ["/bin/ls", "-l"]);
});

Deno.test("ocsf: the zod schema rejects what is not OCSF (it can fail)", () => {
  const good = mapped({ ...proc, kind: "exec", ktimeNs: 1 });
  ok(!OcsfEvent.safeParse({ ...good, type_uid: 100702 }).success, "type_uid mismatch");
  ok(!OcsfEvent.safeParse({ ...good, class_uid: 1234 }).success, "unknown class");
  const { metadata: _, ...noMeta } = good;
  ok(!OcsfEvent.safeParse(noMeta).success, "metadata is required");
  ok(!OcsfEvent.safeParse({ ...good, time: 1.5 }).success, "time is integer ms");
});

Deno.test("format: json and ocsf line writers; a line that cannot be JSON is null, not a throw", () => {
  const v = env();
  const ev = v.stamp(recordToEvent({ ...proc, startTime: 2n ** 63n, kind: "exec", ktimeNs: 1 }));
  const json = eventLineWriter("json", v)(ev)!;
  ok(json.includes('"start_time":9223372036854775808,'), json);
  const ocsf = JSON.parse(eventLineWriter("ocsf", v)(ev)!);
  strictEqual(ocsf.class_uid, 1007);
  const cyclic: Record<string, unknown> = { type: "x" };
  cyclic.self = cyclic;
  strictEqual(eventLineWriter("json", v)(v.stamp(cyclic as never)), null);
});
