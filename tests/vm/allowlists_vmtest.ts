/**
 * VM tier: what waives a matching deny rule (docs/engine.md decision order), with
 * lsm/file_open:
 *  - the survival allowlist (filled by src/bpf/survival.ts from /proc):
 *    a deny rule on PID 1's executable is not enforced, and counted;
 *  - the agent's own cgroup (AEGIS_CFG_AGENT_CGID): a process placed in it
 *    opens a denied file, one outside is denied;
 *  - allow_cgroup (aegis_allow_cgroup) in the live generation only.
 * lsm-off cells: the program loads and attaches and denies nothing.
 */
import { ok, strictEqual } from "node:assert/strict";
import {
  ABI_LAYOUT,
  AEGIS_CFG_AGENT_CGID,
  AEGIS_CNT_SURVIVAL_ALLOW,
  AEGIS_POL_FILE_RULES,
  AEGIS_RT_INODE,
  AEGIS_RULE_DENY,
} from "../../src/bpf/abi_gen.ts";
import { inodeKey as encodeInodeKey, kernelDev, ruleValue } from "../../src/bpf/rule_codec.ts";
import { populateSurvival } from "../../src/bpf/survival.ts";
import { loadEngine } from "../lib/engine.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const DENY = ruleValue(99, AEGIS_RULE_DENY, AEGIS_RT_INODE);

function inodeKey(path: string, gen = 0): Uint8Array<ArrayBuffer> {
  const st = Deno.statSync(path);
  return encodeInodeKey(kernelDev(st.dev), st.ino!, gen);
}

/** aegis_allow_cgroup key {cgid, gen, pad}. */
function cgroupKey(cgid: bigint, gen: number): Uint8Array<ArrayBuffer> {
  const st = ABI_LAYOUT.structs.aegis_cgroup_key;
  const b = new Uint8Array(st.size);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(st.fields.cgid.offset, cgid, true);
  dv.setUint32(st.fields.gen.offset, gen, true);
  return b;
}

/** Read `file` with cat from a shell that first moves itself into `cgroup`
 * (or stays where it is when cgroup is ""): "ok" or "denied". */
async function catIn(cgroup: string, file: string): Promise<string> {
  const move = cgroup ? `echo $$ > ${cgroup}/cgroup.procs && ` : "";
  const r = await run("/bin/sh", ["-c", `${move}exec cat ${file}`]);
  if (r.code === 0) return "ok";
  return /Operation not permitted/.test(r.stderr) ? "denied" : `code ${r.code}: ${r.stderr}`;
}

function newCgroup(name: string): { path: string; id: bigint } {
  const path = `/sys/fs/cgroup/${name}-${crypto.randomUUID().slice(0, 8)}`;
  Deno.mkdirSync(path);
  return { path, id: BigInt(Deno.statSync(path).ino!) };
}

function fixture(): { dir: string; denied: string } {
  const dir = Deno.makeTempDirSync({ dir: "/tmp", prefix: "aegis-allow-" });
  Deno.writeTextFileSync(`${dir}/denied`, "x");
  return { dir, denied: `${dir}/denied` };
}

Deno.test({
  name: "allowlists: survival inodes, the agent cgroup and allow_cgroup waive deny rules",
  ignore: !LSM_ON,
  fn: async (t) => {
    const { dir, denied } = fixture();
    const cgroups: string[] = [];
    await using eng = await loadEngine((s) => s === "lsm/file_open");
    try {
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      const rules = eng.map("aegis_deny_inode");
      const counters = eng.map("aegis_counters");

      await t.step("survival allowlist: PID 1's executable", () => {
        const pid1 = "/proc/1/exe"; // opens and stats PID 1's executable itself
        const entries = populateSurvival(eng.map("aegis_survival_inode"));
        const st = Deno.statSync(pid1);
        ok(entries.some((e) => e.ino === st.ino), `PID 1 listed: ${JSON.stringify(entries)}`);
        rules.update(inodeKey(pid1), DENY);
        rules.update(inodeKey(denied), DENY);
        const before = counters.sumU64(AEGIS_CNT_SURVIVAL_ALLOW);
        strictEqual(tryOpen(pid1), "ok", "survivor opens despite the rule");
        ok(counters.sumU64(AEGIS_CNT_SURVIVAL_ALLOW) > before, "SURVIVAL_ALLOW counted");
        strictEqual(tryOpen(denied), "EPERM/EACCES", "a non-survivor is still denied");
        rules.delete(inodeKey(pid1));
      });

      await t.step("agent cgroup: inside allowed, outside denied", async () => {
        const cg = newCgroup("aegis-vt-agent");
        cgroups.push(cg.path);
        eng.map("aegis_config").setU64(AEGIS_CFG_AGENT_CGID, cg.id);
        strictEqual(await catIn(cg.path, denied), "ok", "in the agent cgroup");
        strictEqual(await catIn("", denied), "denied", "outside");
        eng.map("aegis_config").setU64(AEGIS_CFG_AGENT_CGID, 0n);
        strictEqual(await catIn(cg.path, denied), "denied", "agent cgid cleared");
      });

      await t.step("allow_cgroup: only in the live generation", async () => {
        const cg = newCgroup("aegis-vt-allow");
        cgroups.push(cg.path);
        const allow = eng.map("aegis_allow_cgroup");
        allow.update(cgroupKey(cg.id, 1), ruleValue(5, 0, 0));
        strictEqual(await catIn(cg.path, denied), "denied", "gen 1 entry, gen 0 live");
        allow.update(cgroupKey(cg.id, 0), ruleValue(5, 0, 0));
        strictEqual(await catIn(cg.path, denied), "ok", "gen 0 entry, gen 0 live");
        strictEqual(await catIn("", denied), "denied", "outside the allowed cgroup");
        // switch to generation 1 (rules and policy there too)
        eng.setPolicy(AEGIS_POL_FILE_RULES, 1);
        rules.update(inodeKey(denied, 1), DENY);
        allow.delete(cgroupKey(cg.id, 1));
        eng.setGeneration(1);
        strictEqual(await catIn(cg.path, denied), "denied", "gen 1 live, only a gen 0 entry");
        allow.update(cgroupKey(cg.id, 1), ruleValue(5, 0, 0));
        strictEqual(await catIn(cg.path, denied), "ok", "gen 1 live, gen 1 entry");
      });
    } finally {
      Deno.removeSync(dir, { recursive: true });
      for (const p of cgroups) {
        // move ourselves nowhere: the shells that entered have exited
        try {
          Deno.removeSync(p);
        } catch { /* still busy: the guest is discarded anyway */ }
      }
    }
  },
});

Deno.test({
  name: "without bpf in lsm= the allowlist cells load and attach file_open and deny nothing",
  ignore: LSM_ON,
  fn: async () => {
    const { dir, denied } = fixture();
    await using eng = await loadEngine((s) => s === "lsm/file_open");
    try {
      strictEqual(eng.attach.filter((a) => a.status === "attached").length, 1);
      eng.setPolicy(AEGIS_POL_FILE_RULES);
      eng.map("aegis_deny_inode").update(inodeKey(denied), DENY);
      strictEqual(tryOpen(denied), "ok");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
