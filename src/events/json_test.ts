import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_HOOK_BPF,
  AEGIS_HOOK_BPRM_HASH,
  AEGIS_HOOK_FILE_OPEN,
  AEGIS_HOOK_KERNEL_LOAD_DATA,
  AEGIS_HOOK_MPROTECT_HASH,
  AEGIS_HOOK_PTRACE,
  AEGIS_HOOK_SOCKET_BIND,
  AEGIS_HOOK_SOCKET_CONNECT,
  AEGIS_HOOK_SOCKET_SENDMSG,
  AEGIS_RT_CG_PORT,
  AEGIS_RT_CIDR,
  AEGIS_RT_INODE,
  AEGIS_RT_MODULE,
  AEGIS_RT_PTRACE,
  AEGIS_RULE_DENY,
  AEGIS_RULE_TRUSTED,
  AEGIS_RULE_UNLISTED,
  AEGIS_RULE_UNVERIFIED,
} from "../bpf/abi_gen.ts";
import { type KernelRecord, type ProcInfo, u64 } from "./decode.ts";
import { eventJson } from "./envelope.ts";
import { recordToEvent } from "./json.ts";
import { FileBlockEvent } from "./schema.ts";

const proc: ProcInfo = {
  pid: 4321,
  tid: 4322,
  ppid: 1,
  uid: 1000,
  cgid: 2 ** 40 + 5,
  startTime: 123456789012,
  parentStartTime: 1000,
  comm: "curl",
};
const resolver = {
  resolve: (id: number | bigint) => id === proc.cgid ? "/user.slice/u.scope" : null,
};

Deno.test("json: common fields of docs/telemetry.md on every kernel event", () => {
  const e = recordToEvent({ ...proc, kind: "exec", ktimeNs: 77 }, resolver);
  deepStrictEqual(e, {
    type: "exec",
    ktime_ns: 77,
    pid: 4321,
    tid: 4322,
    ppid: 1,
    uid: 1000,
    start_time: 123456789012,
    exec_id: "123456789012-4321",
    parent_start_time: 1000,
    parent_exec_id: "1000-1",
    cgid: 2 ** 40 + 5,
    cgroup_path: "/user.slice/u.scope",
    comm: "curl",
  });
  // without a resolver, or for an unknown id, cgroup_path is "" (present, a string)
  strictEqual(recordToEvent({ ...proc, kind: "exec", ktimeNs: 1 }).cgroup_path, "");
  strictEqual(
    recordToEvent({ ...proc, cgid: 9, kind: "exec", ktimeNs: 1 }, resolver).cgroup_path,
    "",
  );
});

Deno.test("json: u64 values past 2^53 are written as integers with their exact digits", () => {
  const big = 18446744073709551615n; // 2^64 - 1
  const e = recordToEvent({ ...proc, startTime: big, cgid: big - 1n, kind: "exec", ktimeNs: big });
  const line = eventJson(e);
  ok(line.includes('"ktime_ns":18446744073709551615,'), line);
  ok(line.includes('"start_time":18446744073709551615,'), line);
  ok(line.includes('"cgid":18446744073709551614,'), line);
  ok(line.includes('"exec_id":"18446744073709551615-4321"'), line);
  // a number is only what is exact: 2^53 + 1 cannot be one
  const dv = new DataView(new ArrayBuffer(8));
  dv.setBigUint64(0, 2n ** 53n + 1n, true);
  strictEqual(u64(dv, 0), 2n ** 53n + 1n);
  dv.setBigUint64(0, 2n ** 53n - 1n, true);
  strictEqual(u64(dv, 0), 2 ** 53 - 1);
});

Deno.test("json: file block carries ino, dev, path (kernel's, else the rule's, else none), action", () => {
  const r: KernelRecord = {
    ...proc,
    kind: "file_block",
    ktimeNs: 1,
    ino: 2 ** 35,
    dev: (8 << 20) | 1,
    ruleFlags: 1,
    path: "/etc/shadow",
    action: AEGIS_ACT_BLOCK,
    hook: AEGIS_HOOK_FILE_OPEN,
    ruleId: 12,
  };
  const e = recordToEvent(r);
  strictEqual(e.type, "block");
  strictEqual(e.action, "BLOCK");
  strictEqual(e.hook, "file_open");
  strictEqual(e.ino, 2 ** 35);
  strictEqual(e.dev, (8 << 20) | 1);
  strictEqual(e.path, "/etc/shadow");
  strictEqual(e.path_source, "kernel");
  strictEqual(e.rule_id, 12);
  // no path from the kernel: the rule's, said so; no rule path either: no `path` at all
  const rules = { pathOf: (id: number) => id === 12 ? "/etc/shadow-rule" : null };
  const audit = recordToEvent({ ...r, path: "", action: AEGIS_ACT_AUDIT }, undefined, rules);
  strictEqual(audit.path, "/etc/shadow-rule");
  strictEqual(audit.path_source, "rule");
  const none = recordToEvent({ ...r, path: "", ruleId: 13 }, undefined, rules);
  strictEqual(Object.hasOwn(none, "path"), false);
  strictEqual(none.path_source, "none");
  strictEqual(recordToEvent({ ...r, action: AEGIS_ACT_AUDIT }).action, "AUDIT");
  // an inode rule the content scan made: named as its hash rule, identity_source scan
  const sha = "ab".repeat(32);
  const scanned = {
    pathOf: (id: number) => id === 30 ? "/usr/bin/nc" : null,
    contentOf: (id: number) => id === 30 ? sha : null,
  };
  const s = recordToEvent({ ...r, path: "", ruleId: 30 }, undefined, scanned);
  strictEqual(s.path, "/usr/bin/nc");
  strictEqual(s.rule_type, "hash");
  strictEqual(s.sha256, sha);
  strictEqual(s.identity_source, "scan");
  // valid in the event schema, its enum included (the envelope's fields added)
  const envelope = {
    timestamp: "2026-12-02T00:00:00.000000000Z",
    event_id: "ab-1",
    host: "h",
    agent_version: "v",
  };
  FileBlockEvent.parse({ ...s, ...envelope });
  // any other inode rule: no content fields
  const plain = recordToEvent({ ...r, ruleId: 12 }, undefined, scanned);
  strictEqual(Object.hasOwn(plain, "sha256"), false);
  strictEqual(Object.hasOwn(plain, "rule_type"), false);
});

Deno.test("json: a hash block says hash (deny_binary_hash) or hash_allowlist (not on the allowlist)", () => {
  const sha = "cd".repeat(32);
  const r: KernelRecord = {
    ...proc,
    kind: "file_block",
    ktimeNs: 1,
    ino: 7,
    dev: 8,
    ruleFlags: AEGIS_RULE_DENY,
    path: "/tmp/x",
    action: AEGIS_ACT_BLOCK,
    hook: AEGIS_HOOK_BPRM_HASH,
    ruleId: 4,
    sha256: sha,
  };
  const d = recordToEvent(r);
  deepStrictEqual([d.hook, d.rule_type, d.sha256, d.rule_id], ["bprm_check_hash", "hash", sha, 4]);
  strictEqual(d.identity_source, "ima", "a digest is IMA's measurement");
  const u = recordToEvent({ ...r, ruleFlags: AEGIS_RULE_UNLISTED, ruleId: 0 });
  deepStrictEqual([u.rule_type, u.sha256, u.rule_id], ["hash_allowlist", sha, 0]);
  // mprotect of a file never verified (nothing hashed)
  const m = recordToEvent({
    ...r,
    hook: AEGIS_HOOK_MPROTECT_HASH,
    ruleFlags: AEGIS_RULE_UNVERIFIED,
    ruleId: 0,
    sha256: "0".repeat(64),
  });
  deepStrictEqual([m.hook, m.rule_type, m.sha256, m.rule_id], [
    "file_mprotect_hash",
    "hash_unverified",
    "0".repeat(64),
    0,
  ]);
  strictEqual(m.identity_source, "none", "no digest: no identity");
  // not on trusted_exec_hash (UNLISTED | TRUSTED); a denied content that is also trusted: hash
  const t = recordToEvent({ ...r, ruleFlags: AEGIS_RULE_UNLISTED | AEGIS_RULE_TRUSTED, ruleId: 0 });
  deepStrictEqual([t.rule_type, t.rule_id], ["hash_trusted", 0]);
  strictEqual(
    recordToEvent({ ...r, ruleFlags: AEGIS_RULE_DENY | AEGIS_RULE_TRUSTED }).rule_type,
    "hash",
  );
  // a file block of another rule names no rule_type
  strictEqual(recordToEvent({ ...r, sha256: undefined }).rule_type, undefined);
  strictEqual(recordToEvent({ ...r, sha256: undefined }).identity_source, undefined);
});

Deno.test("json: network block type follows the hook; rule_type is named", () => {
  const base = {
    ...proc,
    kind: "net_block" as const,
    ktimeNs: 1,
    family: 2,
    addr: "10.0.0.1",
    port: 443,
    proto: 6,
    ruleId: 3,
    action: AEGIS_ACT_BLOCK,
  };
  const types = [
    [AEGIS_HOOK_SOCKET_CONNECT, "net_connect_block"],
    [AEGIS_HOOK_SOCKET_BIND, "net_bind_block"],
    [AEGIS_HOOK_SOCKET_SENDMSG, "net_sendmsg_block"],
  ] as const;
  for (const [hook, type] of types) {
    const e = recordToEvent({ ...base, hook, ruleType: AEGIS_RT_CIDR });
    strictEqual(e.type, type);
    strictEqual(e.rule_type, "cidr");
    strictEqual(e.protocol, "tcp");
    strictEqual(e.family, "ipv4");
    if (hook === AEGIS_HOOK_SOCKET_BIND) {
      strictEqual(e.direction, "bind");
      strictEqual(e.local_port, 443);
      strictEqual(Object.hasOwn(e, "remote_ip"), false);
    } else {
      strictEqual(e.direction, hook === AEGIS_HOOK_SOCKET_CONNECT ? "egress" : "send");
      strictEqual(e.remote_ip, "10.0.0.1");
      strictEqual(e.remote_port, 443);
    }
  }
  strictEqual(
    recordToEvent({ ...base, hook: AEGIS_HOOK_SOCKET_CONNECT, ruleType: AEGIS_RT_CG_PORT })
      .rule_type,
    "cg_port",
  );
});

Deno.test("json: kernel block types", () => {
  const base = {
    ...proc,
    kind: "kernel_block" as const,
    ktimeNs: 1,
    targetPid: 9,
    detail: 0,
    ruleId: 1,
    action: AEGIS_ACT_BLOCK,
  };
  strictEqual(
    recordToEvent({ ...base, hook: AEGIS_HOOK_PTRACE, ruleType: AEGIS_RT_PTRACE }).type,
    "kernel_ptrace_block",
  );
  strictEqual(
    recordToEvent({ ...base, hook: AEGIS_HOOK_KERNEL_LOAD_DATA, ruleType: AEGIS_RT_MODULE }).type,
    "kernel_module_block",
  );
  strictEqual(
    recordToEvent({ ...base, hook: AEGIS_HOOK_BPF, ruleType: AEGIS_RT_INODE }).type,
    "kernel_bpf_block",
  );
});

Deno.test("json: every event serialises to one line of JSON", () => {
  const e = recordToEvent({ ...proc, comm: 'a\nb"c', kind: "exec", ktimeNs: 1 });
  const line = JSON.stringify(e);
  strictEqual(line.includes("\n"), false);
  deepStrictEqual(JSON.parse(line), e);
});

Deno.test("json: exec_argv carries argc, argv and whether it was cut (the C++ exec_argv fields)", () => {
  const e = recordToEvent({
    ...proc,
    kind: "exec_argv",
    ktimeNs: 5,
    argv: ["/bin/ls", "-l"],
    totalBytes: 11,
    truncated: false,
  });
  strictEqual(e.type, "exec_argv");
  strictEqual(e.argc, 2);
  deepStrictEqual(e.argv, ["/bin/ls", "-l"]);
  strictEqual(e.argv_truncated, false);
  strictEqual(e.argv_bytes, 11);
  strictEqual(e.exec_id, "123456789012-4321", "joins its exec event");
});
