/**
 * VM tier: file enforcement (lsm/file_open, lsm/inode_permission), loaded
 * from the embedded object through the agent's own code.
 *
 * lsm-on cells, as a round trip: allowed → inode denied → EPERM with a
 * BLOCK record, and every alias of the file denied too (hard link,
 * symlink, rename, bind mount, O_PATH reopen through /proc/self/fd,
 * openat2, relative ".." path) → audit mode and emergency disable: allowed
 * with AUDIT records → rule removed → allowed → detached → allowed.
 * lsm-off cells: the programs load and attach and deny nothing —
 * "attached" is not "enforcing" (what the capability probe relies on).
 *
 * AEGIS_VM_BREAK_DENY=1 leaves the deny map empty: the lsm-on test must
 * then fail (tests/vm/runner_test.sh proves it does).
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import {
  AEGIS_ACT_AUDIT,
  AEGIS_ACT_BLOCK,
  AEGIS_CNT_FILE_DENY,
  AEGIS_HOOK_FILE_OPEN,
  AEGIS_HOOK_INODE_PERMISSION,
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import { inodeKey as encodeInodeKey, kernelDev, ruleValue } from "../../src/bpf/rule_codec.ts";
import type { FileBlockRecord } from "../../src/events/decode.ts";
import { loadEngine } from "../lib/engine.ts";
import { ROOT, run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const BREAK = Deno.env.get("AEGIS_VM_BREAK_DENY") === "1";
const RULE_ID = 4242;
const DENY = ruleValue(RULE_ID, AEGIS_RULE_DENY, AEGIS_RT_INODE);

function inodeKey(path: string, gen = 0): Uint8Array<ArrayBuffer> {
  const st = Deno.statSync(path);
  return encodeInodeKey(kernelDev(st.dev), st.ino!, gen);
}

/** Open through an alias Deno cannot express (tests/vm/aliases.py). */
async function tryAlias(kind: "opath-reopen" | "openat2", path: string): Promise<string> {
  const r = await run("/usr/bin/python3", [`${ROOT}/tests/vm/aliases.py`, kind, path]);
  return r.stdout.trim();
}

function fixture(): { dir: string; denied: string; other: string } {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-file-" });
  Deno.writeTextFileSync(`${dir}/denied`, "secret");
  Deno.writeTextFileSync(`${dir}/other`, "public");
  return { dir, denied: `${dir}/denied`, other: `${dir}/other` };
}

function fileBlocks(recs: { kind: string }[]): FileBlockRecord[] {
  return recs.filter((r) => r.kind === "file_block") as FileBlockRecord[];
}

Deno.test({
  name: "file_open: deny by inode, every alias denied, audit and emergency report, removal allows",
  ignore: !LSM_ON,
  fn: async () => {
    const { dir, denied, other } = fixture();
    await using eng = await loadEngine((s) => s === "lsm/file_open");
    try {
      deepStrictEqual(eng.attach.filter((a) => a.status === "attached").map((a) => a.section), [
        "lsm/file_open",
      ]);
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      const deny = eng.map("aegis_deny_inode");
      const counters = eng.map("aegis_counters");
      strictEqual(tryOpen(denied), "ok", "allowed before the rule");
      eng.records();

      const before = counters.sumU64(AEGIS_CNT_FILE_DENY);
      if (!BREAK) deny.update(inodeKey(denied), DENY);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied with the rule");
      strictEqual(counters.sumU64(AEGIS_CNT_FILE_DENY) - before, 1n, "deny counted once");
      const [blk] = fileBlocks(eng.records());
      ok(blk, "a block record");
      const st = Deno.statSync(denied);
      strictEqual(blk.action, AEGIS_ACT_BLOCK);
      strictEqual(blk.hook, AEGIS_HOOK_FILE_OPEN);
      strictEqual(blk.ino, st.ino);
      strictEqual(blk.dev, kernelDev(st.dev));
      strictEqual(blk.ruleId, RULE_ID);
      strictEqual(blk.pid, Deno.pid);
      strictEqual(tryOpen(other), "ok", "another file still opens");

      // aliases: all the same inode
      Deno.linkSync(denied, `${dir}/hardlink`);
      strictEqual(tryOpen(`${dir}/hardlink`), "EPERM/EACCES", "hard link");
      Deno.symlinkSync(denied, `${dir}/symlink`);
      strictEqual(tryOpen(`${dir}/symlink`), "EPERM/EACCES", "symlink");
      Deno.mkdirSync(`${dir}/sub`);
      strictEqual(tryOpen(`${dir}/sub/../denied`), "EPERM/EACCES", "relative .. path");
      Deno.renameSync(denied, `${dir}/renamed`);
      strictEqual(tryOpen(`${dir}/renamed`), "EPERM/EACCES", "renamed");
      Deno.renameSync(`${dir}/renamed`, denied);
      Deno.writeTextFileSync(`${dir}/mountpoint`, "");
      const bind = await run("mount", ["--bind", denied, `${dir}/mountpoint`]);
      strictEqual(bind.code, 0, bind.stderr);
      try {
        strictEqual(tryOpen(`${dir}/mountpoint`), "EPERM/EACCES", "bind mount");
      } finally {
        await run("umount", [`${dir}/mountpoint`]);
      }
      strictEqual(await tryAlias("opath-reopen", denied), "opath-reopen EPERM", "O_PATH reopen");
      strictEqual(await tryAlias("openat2", denied), "openat2 EPERM", "openat2");
      eng.records();

      // audit mode and emergency disable: allowed, reported as AUDIT
      for (
        const [name, set] of [["audit", eng.setAudit], ["emergency", eng.setEmergency]] as const
      ) {
        eng.records(); // start from an empty queue
        set(true);
        strictEqual(tryOpen(denied), "ok", `${name}: allowed`);
        const audits = fileBlocks(eng.records());
        strictEqual(audits.length, 1, `${name}: one record`);
        strictEqual(audits[0].action, AEGIS_ACT_AUDIT, `${name}: action AUDIT`);
        set(false);
        strictEqual(tryOpen(denied), "EPERM/EACCES", `${name} off: denied again`);
      }

      ok(deny.delete(inodeKey(denied)));
      strictEqual(tryOpen(denied), "ok", "allowed after the rule is removed");
      deny.update(inodeKey(denied), DENY);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied again");
      eng.obj.detach("aegis_file_open");
      strictEqual(tryOpen(denied), "ok", "allowed after detach");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "file rules: a policy switch flips generations with no gap; no file rules means no lookups",
  ignore: !LSM_ON,
  fn: async () => {
    const { dir, denied, other } = fixture();
    await using eng = await loadEngine((s) => s === "lsm/file_open");
    try {
      const deny = eng.map("aegis_deny_inode");
      // generation 0 denies `denied`; generation 1 (written beside it) denies `other`
      eng.setPolicy(AEGIS_POL_FILE_RULES, 0);
      deny.update(inodeKey(denied, 0), DENY);
      eng.setPolicy(AEGIS_POL_FILE_RULES, 1);
      deny.update(inodeKey(other, 1), DENY);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "gen 0 live: its rule holds");
      strictEqual(tryOpen(other), "ok", "gen 0 live: gen 1's rule is not live yet");
      eng.setGeneration(1);
      strictEqual(tryOpen(other), "EPERM/EACCES", "gen 1 live");
      strictEqual(tryOpen(denied), "ok", "gen 1 live: gen 0's rule no longer applies");
      // a generation whose policy has no file rules does not consult the map
      eng.setPolicy(0, 1);
      strictEqual(tryOpen(other), "ok", "no FILE_RULES flag: allowed");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "inode_permission: denies a listed inode and reports the hook",
  ignore: !LSM_ON,
  fn: async () => {
    const { dir, denied, other } = fixture();
    await using eng = await loadEngine((s) => s === "lsm/inode_permission");
    try {
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      eng.map("aegis_deny_inode").update(inodeKey(denied), DENY);
      strictEqual(tryOpen(denied), "EPERM/EACCES");
      strictEqual(tryOpen(other), "ok");
      const blocks = fileBlocks(eng.records());
      ok(blocks.length >= 1 && blocks.every((b) => b.hook === AEGIS_HOOK_INODE_PERMISSION));
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "without bpf in lsm= the file programs load and attach but deny nothing",
  ignore: LSM_ON,
  fn: async () => {
    const lsms = Deno.readTextFileSync("/sys/kernel/security/lsm").trim().split(",");
    ok(!lsms.includes("bpf"), `bpf must not be active here: ${lsms}`);
    const { dir, denied, other } = fixture();
    await using eng = await loadEngine((s) =>
      s === "lsm/file_open" || s === "lsm/inode_permission"
    );
    try {
      deepStrictEqual(eng.attach.filter((a) => a.status === "attached").length, 2);
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      eng.map("aegis_deny_inode").update(inodeKey(denied), DENY);
      strictEqual(tryOpen(denied), "ok", "attached, listed, and still allowed");
      strictEqual(tryOpen(other), "ok");
      strictEqual(eng.map("aegis_counters").sumU64(AEGIS_CNT_FILE_DENY), 0n, "the hook never ran");
      strictEqual(fileBlocks(eng.records()).length, 0, "no records");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
