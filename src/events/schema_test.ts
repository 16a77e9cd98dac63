import { ok, strictEqual } from "node:assert/strict";
import {
  EVENTS_SCHEMA_PATH,
  OCSF_SCHEMA_PATH,
  renderEventsSchema,
  renderOcsfSchema,
} from "../../build/gen_schemas.ts";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_GUARD_LINK_PIN,
  AEGIS_HOOK_BPRM_HASH,
  AEGIS_HOOK_INODE_PERMISSION,
  AEGIS_HOOK_PTRACE,
  AEGIS_HOOK_SELF_UNLINK,
  AEGIS_HOOK_SOCKET_BIND,
  AEGIS_RT_PTRACE,
  AEGIS_RULE_UNLISTED,
  AEGIS_TAMPER_UNLINK,
} from "../bpf/abi_gen.ts";
import { stateChangeEvent } from "../posture/state.ts";
import type { ProcInfo } from "./decode.ts";
import { EventEnvelope, eventJson } from "./envelope.ts";
import { recordToEvent } from "./json.ts";
import { EventLine } from "./schema.ts";

Deno.test("the shipped event schemas are the ones generated from zod", () => {
  strictEqual(Deno.readTextFileSync(EVENTS_SCHEMA_PATH), renderEventsSchema());
  strictEqual(Deno.readTextFileSync(OCSF_SCHEMA_PATH), renderOcsfSchema());
});

const proc: ProcInfo = {
  pid: 5,
  tid: 5,
  ppid: 1,
  uid: 0,
  cgid: 2n ** 63n,
  startTime: 10,
  parentStartTime: 2,
  comm: "sh",
};

Deno.test("EventLine: every kind of event the agent builds parses, read back from its line", () => {
  const env = new EventEnvelope({ host: "h", agentVersion: "1.0.0", clockOffsetNs: 0n });
  const events = [
    recordToEvent({ ...proc, kind: "exec", ktimeNs: 2n ** 60n }),
    recordToEvent({ ...proc, kind: "open", ktimeNs: 1, flags: 0, dfd: -100, path: "/x" }),
    recordToEvent({
      ...proc,
      kind: "exec_argv",
      ktimeNs: 1,
      argv: ["sh", "-c", "true"],
      totalBytes: 11,
      truncated: false,
    }),
    recordToEvent({
      ...proc,
      kind: "file_block",
      ktimeNs: 1,
      ino: 3,
      dev: 4,
      ruleFlags: 1,
      path: "",
      action: AEGIS_ACT_AUDIT,
      hook: AEGIS_HOOK_INODE_PERMISSION,
      ruleId: 9,
    }),
    // an exec not on the allowlist (allow_binary_hash): rule_type hash_allowlist
    recordToEvent({
      ...proc,
      kind: "file_block",
      ktimeNs: 1,
      ino: 3,
      dev: 4,
      ruleFlags: AEGIS_RULE_UNLISTED,
      path: "/tmp/tool",
      action: AEGIS_ACT_BLOCK,
      hook: AEGIS_HOOK_BPRM_HASH,
      ruleId: 0,
      sha256: "0".repeat(64),
    }),
    recordToEvent({
      ...proc,
      kind: "net_block",
      ktimeNs: 1,
      family: 10,
      addr: "0:0:0:0:0:0:0:1",
      port: 22,
      proto: 6,
      ruleType: 5,
      ruleId: 2,
      action: AEGIS_ACT_AUDIT,
      hook: AEGIS_HOOK_SOCKET_BIND,
    }),
    recordToEvent({
      ...proc,
      kind: "kernel_block",
      ktimeNs: 1,
      targetPid: 1,
      detail: 0,
      ruleType: AEGIS_RT_PTRACE,
      ruleId: 1,
      action: AEGIS_ACT_AUDIT,
      hook: AEGIS_HOOK_PTRACE,
    }),
    recordToEvent({
      ...proc,
      kind: "tamper_block",
      ktimeNs: 1,
      action: AEGIS_ACT_BLOCK,
      hook: AEGIS_HOOK_SELF_UNLINK,
      op: AEGIS_TAMPER_UNLINK,
      guard: AEGIS_GUARD_LINK_PIN,
      ino: 12,
      dev: 13,
      target: 0,
      targetCgid: 0,
      detail: 0,
      name: "aegis_file_open",
    }),
    stateChangeEvent({
      transition_id: 1,

      from: null,
      to: "AUDIT_FALLBACK",
      reason_code: "CAPABILITY_AUDIT_ONLY",
      detail: "d",
      degradation_count: 1,
      strict_mode: false,
      enforce_requested: true,
      at_unix: 1,
    }),
    { type: "control_change", event_version: 1, control: "live_rule", action: "add" },
  ];
  for (const e of events) {
    const line = eventJson(env.stamp(e));
    const r = EventLine.safeParse(JSON.parse(line));
    ok(r.success, `${e.type}: ${JSON.stringify(r.error?.issues)}\n${line}`);
  }
  // what it catches: a u64 as a string (the old format), an unknown type
  const exec = JSON.parse(eventJson(env.stamp(events[0])));
  ok(!EventLine.safeParse({ ...exec, start_time: "10" }).success);
  ok(!EventLine.safeParse({ ...exec, type: "nope" }).success);
  ok(!EventLine.safeParse({ ...exec, timestamp: "2026-01-01T00:00:00Z" }).success);
});
