/**
 * VM tier: the minimal lsm/file_open program, loaded from the embedded
 * object through the agent's own code (shim, BpfObject, maps).
 *
 * lsm-on cells: allowed → inode denied → open fails with EPERM (counted),
 *   other files still open → key removed → allowed → denied again →
 *   detached → allowed.
 * lsm-off cells: the program loads and attaches, and denies nothing —
 *   "attached" is not "enforcing" (what the capability probe relies on).
 *
 * AEGIS_VM_BREAK_DENY=1 leaves the deny map empty: the lsm-on test must
 * then fail (tests/vm/runner_test.sh proves it does).
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { bpfObjectBytes, openEmbeddedShim } from "../../src/assets/mod.ts";
import {
  AEGIS_CNT_FILE_DENY,
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import { BpfObject } from "../../src/bpf/object.ts";
import {
  inodeKey as encodeInodeKey,
  kernelDev,
  policyValue,
  ruleValue,
  u32Key,
} from "../../src/bpf/rule_codec.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const BREAK = Deno.env.get("AEGIS_VM_BREAK_DENY") === "1";
const PROG = "aegis_file_open";

function inodeKey(path: string): Uint8Array<ArrayBuffer> {
  const st = Deno.statSync(path);
  return encodeInodeKey(kernelDev(st.dev), st.ino!, 0);
}

const DENY = ruleValue(1, AEGIS_RULE_DENY, AEGIS_RT_INODE);

/** errno name of opening `path` for reading, or "ok". */
function tryOpen(path: string): string {
  try {
    Deno.openSync(path).close();
    return "ok";
  } catch (e) {
    if (e instanceof Deno.errors.PermissionDenied) return "EPERM/EACCES";
    return String(e);
  }
}

async function loadLsm(): Promise<{ obj: BpfObject; close: () => void }> {
  const shim = await openEmbeddedShim();
  const obj = BpfObject.open(shim, await bpfObjectBytes());
  obj.selectPrograms((_, section) => section === "lsm/file_open");
  obj.load();
  obj.map("aegis_policy").update(u32Key(0), policyValue(AEGIS_POL_FILE_RULES));
  return {
    obj,
    close: () => {
      obj.close();
      shim.close();
    },
  };
}

function fixture(): { denied: string; other: string; dir: string } {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-lsm-" });
  Deno.writeTextFileSync(`${dir}/denied`, "secret");
  Deno.writeTextFileSync(`${dir}/other`, "public");
  return { denied: `${dir}/denied`, other: `${dir}/other`, dir };
}

Deno.test({
  name: "lsm/file_open denies an inode with EPERM, and only while attached and listed",
  ignore: !LSM_ON,
  fn: async () => {
    const { denied, other, dir } = fixture();
    const { obj, close } = await loadLsm();
    try {
      const res = obj.attachAll().find((r) => r.program === PROG)!;
      strictEqual(res.status, "attached", JSON.stringify(res));
      const deny = obj.map("aegis_deny_inode");
      const counters = obj.map("aegis_counters");
      const value = DENY;
      strictEqual(tryOpen(denied), "ok", "allowed before the rule");
      const before = counters.sumU64(AEGIS_CNT_FILE_DENY);
      if (!BREAK) deny.update(inodeKey(denied), value);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied with the rule");
      strictEqual(counters.sumU64(AEGIS_CNT_FILE_DENY) - before, 1n, "deny counted once");
      strictEqual(tryOpen(other), "ok", "another file still opens");
      // the denial is by inode: a hard link is denied too
      Deno.linkSync(denied, `${dir}/alias`);
      strictEqual(tryOpen(`${dir}/alias`), "EPERM/EACCES", "hard link denied");
      ok(deny.delete(inodeKey(denied)));
      strictEqual(tryOpen(denied), "ok", "allowed after the rule is removed");
      deny.update(inodeKey(denied), value);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied again");
      obj.detach(PROG);
      strictEqual(tryOpen(denied), "ok", "allowed after detach");
    } finally {
      close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "without bpf in lsm= the program loads and attaches but denies nothing",
  ignore: LSM_ON,
  fn: async () => {
    const lsms = Deno.readTextFileSync("/sys/kernel/security/lsm").trim().split(",");
    ok(!lsms.includes("bpf"), `bpf must not be active here: ${lsms}`);
    const { denied, other, dir } = fixture();
    const { obj, close } = await loadLsm();
    try {
      const res = obj.attachAll().find((r) => r.program === PROG)!;
      deepStrictEqual(res.status, "attached", JSON.stringify(res));
      const deny = obj.map("aegis_deny_inode");
      const counters = obj.map("aegis_counters");
      deny.update(inodeKey(denied), DENY);
      strictEqual(tryOpen(denied), "ok", "attached, listed, and still allowed");
      strictEqual(tryOpen(other), "ok");
      strictEqual(counters.sumU64(AEGIS_CNT_FILE_DENY), 0n, "the hook never ran");
    } finally {
      close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
