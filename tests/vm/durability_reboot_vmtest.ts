/**
 * VM tier, two boots of one cell (scripts/vm/test_vm.sh runs files named
 * *_reboot_vmtest.ts again in a second boot, AEGIS_VM_BOOT=2, with the
 * folder /results/persist the first boot left; nothing else survives: not
 * bpffs, not the guest's files).
 *
 * Boot 1: an agent applies a policy (one path that exists, one that does
 * not yet) and a live rule with a TTL, and stops; its state directory is
 * copied to the persistent folder — the state directory on a disk that
 * outlives the machine.
 * Boot 2: the rule files exist again (new inodes, as on any boot); the
 * state directory is put back; `aegisbpf run` starts with no operator step,
 * and at the first 200 of /health?require_enforce=1 both rules already deny;
 * policy_restored precedes the first state_change; the missing path is
 * enforced when it appears. An audit-mode start on fresh maps restores the
 * rules too: the secret opens, with an AUDIT record naming it.
 */
import { ok, strictEqual } from "node:assert/strict";
import { pinsExist } from "../../src/bpf/pins.ts";
import { AGENT, Agent, agentEnv, cleanupAgent, type Json, waitUntil } from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const BOOT = Deno.env.get("AEGIS_VM_BOOT");
const PERSIST = `${Deno.env.get("AEGIS_VM_RESULTS") ?? "/results"}/persist`;
const FILES = "/srv/aegis-reboot";
const DENIED = "EPERM/EACCES";

/** The rule files, made anew (each boot has its own root file system). */
function makeFiles(): void {
  Deno.mkdirSync(FILES, { recursive: true });
  for (const n of ["secret", "live"]) Deno.writeTextFileSync(`${FILES}/${n}`, n);
}

function copyDir(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true, mode: 0o700 });
  for (const e of Deno.readDirSync(from)) {
    if (e.isFile) Deno.copyFileSync(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isDirectory) copyDir(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

Deno.test({
  name: BOOT === "2"
    ? "reboot, boot 1 (ran in the first boot)"
    : "reboot, boot 1: a policy and a live rule applied; the state directory kept on a disk",
  ignore: !LSM_ON || BOOT !== "1",
  fn: async () => {
    try {
      Deno.removeSync(PERSIST, { recursive: true }); // never boot 2 on an older run's state
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    makeFiles();
    const e = agentEnv();
    let a: Agent | null = new Agent([], e.env);
    try {
      await a.ready();
      Deno.writeTextFileSync(
        `${e.dir}/p.conf`,
        `version=1\n[deny_path]\n${FILES}/secret\n${FILES}/later\n`,
      );
      const cli = async (...args: string[]) => {
        const r = await run(AGENT, args, e.env);
        strictEqual(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      };
      await cli("policy", "apply", `${e.dir}/p.conf`);
      await cli("block", "add", `${FILES}/live`, "--ttl", "2h");
      strictEqual(tryOpen(`${FILES}/secret`), DENIED);
      strictEqual(tryOpen(`${FILES}/live`), DENIED);
      const st = await a.stop();
      strictEqual(st.code, 0, `a clean stop; the agent's log:\n${a.err.slice(-4000)}`);
      a = null;
      // the state directory, on a disk that outlives this machine
      copyDir(e.stateDir, `${PERSIST}/state`);
    } finally {
      await cleanupAgent(a, e);
    }
  },
});

Deno.test({
  name: BOOT === "2"
    ? "reboot, boot 2: with no operator step both rules deny before /health?require_enforce=1 first answers 200; audit restores them as records"
    : "reboot, boot 2 (runs in the second boot of this cell)",
  ignore: !LSM_ON || BOOT !== "2",
  fn: async () => {
    ok(Deno.statSync(`${PERSIST}/state/policy.applied`).isFile, "boot 1 left its state");
    makeFiles();
    const e = agentEnv();
    copyDir(`${PERSIST}/state`, e.stateDir);
    ok(!pinsExist(e.pinRoot) && !pinsExist("/sys/fs/bpf/aegisbpf"), "a new boot: no pins");
    strictEqual(tryOpen(`${FILES}/secret`), "ok", "nothing enforces before the agent");
    let a: Agent | null = new Agent([], e.env);
    try {
      // the first healthy answer: both rules must deny by then
      let first: { secret: string; live: string } | null = null;
      const deadline = Date.now() + 180_000;
      while (!first) {
        if (a.exited) throw new Error(`the agent exited:\n${a.err}`);
        if (Date.now() > deadline) {
          throw new Error(
            `no 200 from /health?require_enforce=1 within 180 s; the agent's log:\n${
              a.err.slice(-6000)
            }`,
          );
        }
        try {
          const r = await fetch(`http://127.0.0.1:${e.port}/health?require_enforce=1`, {
            signal: AbortSignal.timeout(5000),
          });
          await r.body?.cancel();
          if (r.status === 200) {
            first = { secret: tryOpen(`${FILES}/secret`), live: tryOpen(`${FILES}/live`) };
          }
        } catch { /* not listening yet */ }
        await new Promise((r) => setTimeout(r, 10));
      }
      strictEqual(first.secret, DENIED, "the policy's path at the first 200");
      strictEqual(first.live, DENIED, "the live rule at the first 200");
      await a.stateChanges();
      const evs: Json[] = a.events();
      const restored = evs.findIndex((ev) => ev.type === "policy_restored");
      const firstState = evs.findIndex((ev) => ev.type === "state_change");
      ok(restored >= 0 && restored < firstState, `policy_restored ${restored} < ${firstState}`);
      strictEqual(evs[restored].live_rules, 1);
      strictEqual(evs[restored].unresolved, 1, "the path that does not exist yet is watched");
      Deno.writeTextFileSync(`${FILES}/later`, "x");
      await waitUntil(() => tryOpen(`${FILES}/later`) === DENIED, "the watched path", 30_000);

      // an audit-mode start on fresh maps restores the rules too: reported, not denied
      strictEqual((await a.stop()).code, 0);
      a = null;
      strictEqual((await run(AGENT, ["uninstall"], e.env)).code, 0);
      await waitUntil(() => tryOpen(`${FILES}/secret`) === "ok", "the pins gone", 30_000);
      a = new Agent(["--audit"], e.env);
      await a.ready();
      const audit: Agent = a;
      // events carry u64s as JSON integers (docs/telemetry.md)
      const ino = Deno.statSync(`${FILES}/secret`).ino;
      strictEqual(tryOpen(`${FILES}/secret`), "ok", "audit denies nothing");
      await audit.waitFor(
        () =>
          audit.events().some((ev) =>
            ev.type === "block" && ev.action === "AUDIT" && ev.ino === ino
          ),
        "an AUDIT record of the restored rule",
        30_000,
      );
    } finally {
      await cleanupAgent(a, e);
      a = null;
    }
  },
});
