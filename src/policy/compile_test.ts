import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  AEGIS_POL_CGROUP_RULES,
  AEGIS_POL_DENY_PTRACE,
  AEGIS_POL_EXEC_ALLOWLIST,
  AEGIS_POL_EXEC_HASH,
  AEGIS_POL_EXEC_RULES,
  AEGIS_POL_EXEC_TRUSTED,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_IMA_FAIL_CLOSED,
  AEGIS_POL_NET_CIDR,
  AEGIS_POL_NET_IP,
  AEGIS_POL_NET_IP_PORT,
  AEGIS_POL_NET_PORT,
  AEGIS_POL_NET_RULES,
  AEGIS_POL_NET_TABLES,
  AEGIS_POL_RUNTIME_DEPS,
  AEGIS_RT_HASH,
  AEGIS_RULE_ALLOW,
  AEGIS_RULE_DENY,
  AEGIS_RULE_PROTECT,
  AEGIS_RULE_TRUSTED,
} from "../bpf/abi_gen.ts";
import type { ResolvedPath } from "../bpf/path_rule.ts";
import { cgroupKey, hashKey, inodeKey } from "../bpf/rule_codec.ts";
import { type CompileEnv, compilePolicy } from "./compile.ts";
import { emptyPolicy, type Policy } from "./model.ts";

const env: CompileEnv = {
  resolvePath: (path: string): ResolvedPath =>
    path === "/missing"
      ? { status: "unresolved", path, reason: "does not exist (yet)" }
      : { status: "resolved", path, canonical: path, dev: 0x800001, ino: path.length },
  resolveCgroup: (p) => (p === "/web" ? 77n : null),
};

function flagsOf(value: Uint8Array): number {
  return new DataView(value.buffer, value.byteOffset).getUint16(4, true);
}

Deno.test("compile: paths to inodes, deny+protect merged, unresolved reported, line = rule id", () => {
  const p: Policy = {
    ...emptyPolicy(4),
    denyPath: [{ path: "/etc/shadow", line: 3 }, { path: "/missing", line: 4 }],
    protectPath: [{ path: "/etc/shadow", line: 7 }, { path: "/etc/ssh", line: 8 }],
  };
  const { compiled, unresolved } = compilePolicy(p, env);
  strictEqual(compiled.flags, AEGIS_POL_FILE_RULES | AEGIS_POL_NET_TABLES, "no network table");
  deepStrictEqual(unresolved, [{
    section: "deny_path",
    line: 4,
    what: "/missing",
    reason: "does not exist (yet)",
  }]);
  deepStrictEqual(compiled.entries.map((e) => [e.map, flagsOf(e.value)]), [
    ["aegis_deny_inode", AEGIS_RULE_DENY | AEGIS_RULE_PROTECT],
    ["aegis_deny_inode", AEGIS_RULE_PROTECT],
  ]);
  deepStrictEqual(compiled.entries[0].key(1), inodeKey(0x800001, "/etc/shadow".length, 1));
  strictEqual(new DataView(compiled.entries[0].value.buffer).getUint32(0, true), 3);
});

Deno.test("compile: network, comm, cgroups and kernel switches set the right flags and maps", () => {
  const p: Policy = {
    ...emptyPolicy(6),
    denyIp: [{ ip: "10.1.2.3", family: 4, line: 2 }],
    denyCidr: [{ cidr: "2001:db8::/32", family: 6, line: 3 }],
    denyPort: [{ port: 22, proto: "tcp", dir: "bind", line: 4 }],
    denyIpPort: [{ ip: "1.2.3.4", family: 4, port: 443, proto: "any", line: 5 }],
    denyComm: [{ comm: "nc", line: 6 }],
    denyPtrace: { enabled: true, line: 7 },
    allowCgroup: [{ cgroup: { kind: "path", path: "/web" }, line: 8 }, {
      cgroup: { kind: "path", path: "/gone" },
      line: 9,
    }],
    cgroupDenyPort: [{
      cgroup: { kind: "cgid", cgid: 5n },
      port: 80,
      proto: "tcp",
      dir: "egress",
      line: 10,
    }],
  };
  const { compiled, unresolved } = compilePolicy(p, env);
  strictEqual(
    compiled.flags,
    AEGIS_POL_NET_RULES | AEGIS_POL_EXEC_RULES | AEGIS_POL_DENY_PTRACE | AEGIS_POL_CGROUP_RULES |
      AEGIS_POL_NET_TABLES | AEGIS_POL_NET_IP | AEGIS_POL_NET_CIDR | AEGIS_POL_NET_PORT |
      AEGIS_POL_NET_IP_PORT,
  );
  deepStrictEqual(compiled.entries.map((e) => e.map), [
    "aegis_deny_comm",
    "aegis_deny_ip4",
    "aegis_deny_cidr6",
    "aegis_deny_port",
    "aegis_deny_ip4_port",
    "aegis_allow_cgroup",
    "aegis_cg_deny_port",
  ]);
  deepStrictEqual(compiled.entries[5].key(0), cgroupKey(77n, 0));
  deepStrictEqual(unresolved.map((u) => [u.section, u.line]), [["allow_cgroup", 9]]);
});

Deno.test("compile: protect_connect turns network rules protect-only", () => {
  const p: Policy = {
    ...emptyPolicy(4),
    denyIp: [{ ip: "10.0.0.1", family: 4, line: 2 }],
    protectConnect: { enabled: true, line: 5 },
  };
  const { compiled } = compilePolicy(p, env);
  strictEqual(flagsOf(compiled.entries[0].value), AEGIS_RULE_PROTECT);
});

Deno.test("compile: a network table's bit is set only when the policy has rules for it", () => {
  const { compiled } = compilePolicy({
    ...emptyPolicy(3),
    denyCidr: [{ cidr: "10.0.0.0/8", family: 4, line: 2 }],
  }, env);
  strictEqual(compiled.flags, AEGIS_POL_NET_RULES | AEGIS_POL_NET_TABLES | AEGIS_POL_NET_CIDR);
  strictEqual(compilePolicy(emptyPolicy(1), env).compiled.flags, AEGIS_POL_NET_TABLES);
});

Deno.test("compile: deny_binary_hash → aegis_deny_hash (digest bytes, generation), its own switch", () => {
  const hex = "00ff".repeat(16);
  const p: Policy = {
    ...emptyPolicy(3),
    denyBinaryHash: [{ sha256: hex, line: 5 }, { sha256: "ab".repeat(32), line: 6 }],
  };
  const { compiled, unresolved } = compilePolicy(p, env);
  deepStrictEqual(unresolved, []);
  strictEqual(compiled.flags, AEGIS_POL_EXEC_HASH | AEGIS_POL_NET_TABLES, "only the hash switch");
  deepStrictEqual(compiled.entries.map((e) => e.map), ["aegis_deny_hash", "aegis_deny_hash"]);
  const key = compiled.entries[0].key(1);
  strictEqual(key.length, 40);
  deepStrictEqual([...key.subarray(0, 4)], [0x00, 0xff, 0x00, 0xff]);
  strictEqual(new DataView(key.buffer).getUint32(32, true), 1, "the generation");
  deepStrictEqual(key, hashKey(hex, 1));
  const v = new DataView(compiled.entries[1].value.buffer);
  strictEqual(v.getUint32(0, true), 6, "rule id = line");
  strictEqual(flagsOf(compiled.entries[1].value), AEGIS_RULE_DENY);
  strictEqual(v.getUint16(6, true), AEGIS_RT_HASH);
  // no hash rule: the switch stays off (the sleepable program hashes nothing)
  strictEqual(compilePolicy(emptyPolicy(3), env).compiled.flags & AEGIS_POL_EXEC_HASH, 0);
});

Deno.test("compile: allow_binary_hash → aegis_deny_hash with ALLOW, the allowlist switch", () => {
  const allowed = "0a".repeat(32);
  const denied = "d0".repeat(32);
  const only = compilePolicy({
    ...emptyPolicy(3),
    allowBinaryHash: [{ sha256: allowed, line: 4 }],
  }, env).compiled;
  strictEqual(only.flags, AEGIS_POL_EXEC_ALLOWLIST | AEGIS_POL_NET_TABLES, "no deny-list switch");
  deepStrictEqual(only.entries.map((e) => e.map), ["aegis_deny_hash"]);
  deepStrictEqual(only.entries[0].key(0), hashKey(allowed, 0));
  const v = new DataView(only.entries[0].value.buffer);
  strictEqual(v.getUint32(0, true), 4, "rule id = line");
  strictEqual(flagsOf(only.entries[0].value), AEGIS_RULE_ALLOW);
  strictEqual(v.getUint16(6, true), AEGIS_RT_HASH);
  // both lists: one map, each entry with its own flag, both switches
  const both = compilePolicy({
    ...emptyPolicy(3),
    denyBinaryHash: [{ sha256: denied, line: 3 }],
    allowBinaryHash: [{ sha256: allowed, line: 5 }],
  }, env).compiled;
  strictEqual(
    both.flags,
    AEGIS_POL_EXEC_HASH | AEGIS_POL_EXEC_ALLOWLIST | AEGIS_POL_NET_TABLES,
  );
  deepStrictEqual(
    both.entries.map((e) => [e.map, flagsOf(e.value)]),
    [["aegis_deny_hash", AEGIS_RULE_DENY], ["aegis_deny_hash", AEGIS_RULE_ALLOW]],
  );
  deepStrictEqual(both.entries[0].key(1), hashKey(denied, 1));
  deepStrictEqual(both.entries[1].key(1), hashKey(allowed, 1));
  // an empty allowlist sets no switch (no allowlist mode)
  strictEqual(compilePolicy(emptyPolicy(3), env).compiled.flags & AEGIS_POL_EXEC_ALLOWLIST, 0);
});

Deno.test("compile: trusted_exec_hash → TRUSTED OR-ed into each content's one entry; switches", () => {
  const a = "0a".repeat(32);
  const b = "0b".repeat(32);
  const d = "0d".repeat(32);
  const c = compilePolicy({
    ...emptyPolicy(5),
    denyBinaryHash: [{ sha256: d, line: 9 }],
    allowBinaryHash: [{ sha256: a, line: 4 }, { sha256: b, line: 5 }],
    trustedExecHash: [{ sha256: b, line: 7 }, { sha256: d, line: 8 }, { sha256: a, line: 11 }],
  }, env).compiled;
  // one entry per content (a second write of the same key would lose a list)
  deepStrictEqual(c.entries.map((e) => e.map), Array(3).fill("aegis_deny_hash"));
  const byKey = new Map(c.entries.map((e) => [e.key(0).join(), e.value]));
  const of = (sha: string) => {
    const v = byKey.get(hashKey(sha, 0).join())!;
    return [new DataView(v.buffer).getUint32(0, true), flagsOf(v)];
  };
  deepStrictEqual(of(a), [4, AEGIS_RULE_ALLOW | AEGIS_RULE_TRUSTED], "first line of the content");
  deepStrictEqual(of(b), [5, AEGIS_RULE_ALLOW | AEGIS_RULE_TRUSTED]);
  deepStrictEqual(
    of(d),
    [9, AEGIS_RULE_DENY | AEGIS_RULE_TRUSTED],
    "a denied content: its deny line",
  );
  strictEqual(
    c.flags,
    AEGIS_POL_EXEC_HASH | AEGIS_POL_EXEC_ALLOWLIST | AEGIS_POL_EXEC_TRUSTED | AEGIS_POL_NET_TABLES,
  );
  // ima_fail_closed only with a trusted list; protect_runtime_deps on its own bit; false = off
  const fc = (p: Partial<Policy>) => compilePolicy({ ...emptyPolicy(5), ...p }, env).compiled.flags;
  const flag = { enabled: true, line: 2 };
  strictEqual(
    fc({ trustedExecHash: [{ sha256: a, line: 3 }], imaFailClosed: flag }),
    AEGIS_POL_EXEC_TRUSTED | AEGIS_POL_IMA_FAIL_CLOSED | AEGIS_POL_NET_TABLES,
  );
  strictEqual(fc({ imaFailClosed: flag }), AEGIS_POL_NET_TABLES, "no trusted list: no switch");
  strictEqual(fc({ protectRuntimeDeps: flag }), AEGIS_POL_RUNTIME_DEPS | AEGIS_POL_NET_TABLES);
  strictEqual(fc({ protectRuntimeDeps: { enabled: false, line: 2 } }), AEGIS_POL_NET_TABLES);
  strictEqual(fc({ requireImaAppraisal: flag }), AEGIS_POL_NET_TABLES, "a posture need only");
});

Deno.test("hashKey: refuses anything but 64 hex digits", () => {
  for (const bad of ["", "ab".repeat(31), "ab".repeat(33), "zz".repeat(32), "constructor"]) {
    let threw = false;
    try {
      hashKey(bad, 0);
    } catch (e) {
      threw = e instanceof RangeError;
    }
    strictEqual(threw, true, bad);
  }
});
