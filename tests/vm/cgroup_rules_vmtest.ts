/**
 * VM tier: cgroup-scoped rules (cgroup_deny_inode, cgroup_deny_ip,
 * cgroup_deny_port). They apply only to processes in their cgroup, and a
 * global allow_cgroup entry does not waive them (it waives global rules).
 */
import { deepStrictEqual, strictEqual } from "node:assert/strict";
import {
  AEGIS_POL_CGROUP_RULES,
  AEGIS_POL_FILE_RULES,
  AEGIS_POL_NET_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import {
  cgInodeKey,
  cgIpKey,
  cgPortKey,
  inodeKey,
  kernelDev,
  ruleValue,
} from "../../src/bpf/rule_codec.ts";
import type { FileBlockRecord, NetBlockRecord } from "../../src/events/decode.ts";
import { loadEngine } from "../lib/engine.ts";
import { run } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const CG_ROOT = "/sys/fs/cgroup";

/** Run python3 code as a child placed in cgroup `cg` (or left where it is). */
async function inCgroup(cg: string | null, code: string, ...args: string[]): Promise<string> {
  const pre = cg
    ? `import os\nopen(${JSON.stringify(`${cg}/cgroup.procs`)}, "w").write(str(os.getpid()))\n`
    : "";
  const r = await run("/usr/bin/python3", ["-c", pre + code, ...args]);
  if (r.code !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout.trim();
}

const OPEN = `import sys
try:
    open(sys.argv[1]).close(); print("ok")
except PermissionError:
    print("EPERM")`;

const CONNECT = `import socket, sys
s = socket.socket()
try:
    s.connect(("127.0.0.1", int(sys.argv[1]))); print("ok")
except PermissionError:
    print("EPERM")
except OSError as e:
    print(e.__class__.__name__)`;

Deno.test({
  name:
    "cgroup-scoped file and network rules apply only in their cgroup, allow_cgroup does not waive them",
  ignore: !LSM_ON,
  fn: async () => {
    await run("ip", ["link", "set", "lo", "up"]);
    const cgA = `${CG_ROOT}/aegis-cg-a-${crypto.randomUUID().slice(0, 6)}`;
    Deno.mkdirSync(cgA);
    const cgid = BigInt(Deno.statSync(cgA).ino!);
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-cg-" });
    Deno.writeTextFileSync(`${dir}/scoped`, "x");
    Deno.writeTextFileSync(`${dir}/global`, "x");
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    await using eng = await loadEngine((s) => s === "lsm/file_open" || s === "lsm/socket_connect");
    try {
      eng.setPolicy(AEGIS_POL_FILE_RULES | AEGIS_POL_NET_RULES | AEGIS_POL_CGROUP_RULES);
      const st = Deno.statSync(`${dir}/scoped`);
      const gst = Deno.statSync(`${dir}/global`);
      const deny = ruleValue(31, AEGIS_RULE_DENY, AEGIS_RT_INODE);
      eng.map("aegis_cg_deny_inode").update(cgInodeKey(cgid, kernelDev(st.dev), st.ino!, 0), deny);
      eng.map("aegis_deny_inode").update(inodeKey(kernelDev(gst.dev), gst.ino!, 0), deny);
      eng.map("aegis_cg_deny_port").update(
        cgPortKey(cgid, port, 6, 0, 0),
        ruleValue(32, AEGIS_RULE_DENY, 0),
      );

      strictEqual(await inCgroup(cgA, OPEN, `${dir}/scoped`), "EPERM", "scoped rule in its cgroup");
      strictEqual(await inCgroup(null, OPEN, `${dir}/scoped`), "ok", "scoped rule elsewhere");
      strictEqual(await inCgroup(cgA, OPEN, `${dir}/global`), "EPERM", "global rule in cgroup A");
      strictEqual(
        await inCgroup(cgA, CONNECT, String(port)),
        "EPERM",
        "cg port rule in its cgroup",
      );
      strictEqual(await inCgroup(null, CONNECT, String(port)), "ok", "cg port rule elsewhere");

      // allow_cgroup A: global rules waived for A, cgroup-scoped ones not
      const allowKey = new Uint8Array(16);
      new DataView(allowKey.buffer).setBigUint64(0, cgid, true);
      eng.map("aegis_allow_cgroup").update(allowKey, ruleValue(33, 0, 0));
      strictEqual(await inCgroup(cgA, OPEN, `${dir}/global`), "ok", "allow_cgroup waives global");
      strictEqual(await inCgroup(cgA, OPEN, `${dir}/scoped`), "EPERM", "…but not cgroup-scoped");

      // an IPv4 address rule for the cgroup
      eng.map("aegis_cg_deny_port").delete(cgPortKey(cgid, port, 6, 0, 0));
      eng.map("aegis_cg_deny_ip").update(
        cgIpKey(cgid, new Uint8Array([127, 0, 0, 1]), 0),
        ruleValue(34, AEGIS_RULE_DENY, 0),
      );
      strictEqual(await inCgroup(cgA, CONNECT, String(port)), "EPERM", "cg ip rule");
      const recs = eng.records();
      const files = recs.filter((r) => r.kind === "file_block") as FileBlockRecord[];
      const nets = recs.filter((r) => r.kind === "net_block") as NetBlockRecord[];
      deepStrictEqual([...new Set(files.map((r) => r.ruleId))].sort(), [31]);
      deepStrictEqual(nets.map((r) => [r.ruleId, r.ruleType]), [[32, 11], [34, 10]]);
      deepStrictEqual([...new Set([...files, ...nets].map((r) => r.cgid))], [Number(cgid)]);
    } finally {
      listener.close();
      Deno.removeSync(dir, { recursive: true });
      Deno.removeSync(cgA);
    }
  },
});

Deno.test({
  name: "without bpf in lsm= cgroup-scoped rules deny nothing",
  ignore: LSM_ON,
  fn: async () => {
    const cgA = `${CG_ROOT}/aegis-cg-off-${crypto.randomUUID().slice(0, 6)}`;
    Deno.mkdirSync(cgA);
    const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-cg-" });
    Deno.writeTextFileSync(`${dir}/scoped`, "x");
    await using eng = await loadEngine((s) => s === "lsm/file_open");
    try {
      eng.setPolicy(AEGIS_POL_FILE_RULES | AEGIS_POL_CGROUP_RULES);
      const st = Deno.statSync(`${dir}/scoped`);
      eng.map("aegis_cg_deny_inode").update(
        cgInodeKey(BigInt(Deno.statSync(cgA).ino!), kernelDev(st.dev), st.ino!, 0),
        ruleValue(31, AEGIS_RULE_DENY, AEGIS_RT_INODE),
      );
      strictEqual(await inCgroup(cgA, OPEN, `${dir}/scoped`), "ok");
    } finally {
      Deno.removeSync(dir, { recursive: true });
      Deno.removeSync(cgA);
    }
  },
});
