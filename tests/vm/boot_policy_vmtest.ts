/**
 * VM tier: the policy an agent is started with, and what a restart checks.
 * `run --policy BUNDLE --require-signature` applies the bundle at start (the
 * agent itself is the caller) and again on SIGHUP when the file changed; an
 * unchanged file is a no-op and a bad one is logged while the current policy
 * keeps enforcing. After a reboot (pins gone) the stored bundle is verified
 * again: a damaged one refuses the start with POLICY_RESTORE_FAILED and
 * leaves nothing attached; the good one comes back. A --policy that cannot
 * be applied refuses the start (RUN_POLICY_FAILED) while the pins it took
 * over keep enforcing the previous policy. The agent runs in a cgroup of its
 * own below the one it was started in, removed at a clean stop.
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { uninstallPins } from "../../src/bpf/engine.ts";
import { pinsExist } from "../../src/bpf/pins.ts";
import {
  AGENT,
  Agent,
  agentEnv,
  cleanupAgent,
  flowTestName,
  type Json,
  onFlowKernel,
  waitUntil,
} from "../lib/agent.ts";
import { run, tryOpen } from "../lib/helpers.ts";

const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";
const DENIED = "EPERM/EACCES";
/** placed on 6.1 to balance the two lsm-on cells (docs/vm.md "Flow tests run in one cell") */
const KERNEL = "6.1";

async function sha256(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new Uint8Array(bytes)));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

Deno.test({
  name: flowTestName(
    "run --policy and --require-signature: applied at start and on SIGHUP, verified again after a reboot, refusals keep the previous policy; own cgroup below the supervisor's",
    KERNEL,
  ),
  ignore: !LSM_ON || !onFlowKernel(KERNEL),
  fn: async () => {
    const e = agentEnv();
    const env = { ...e.env, AEGIS_KEYS_DIR: `${e.dir}/keys` };
    const f = (n: string) => `${e.dir}/${n}`;
    for (const n of ["a", "b"]) Deno.writeTextFileSync(f(n), n);
    const cli = async (...args: string[]) => {
      const r = await run(AGENT, args, env);
      strictEqual(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    };
    const sign = (pol: string, out: string, v: number) =>
      cli(
        "policy",
        "sign",
        f(pol),
        "--key",
        f("signer.key"),
        "--output",
        f(out),
        "--policy-version",
        String(v),
      );
    Deno.mkdirSync(`${e.dir}/keys`, { mode: 0o755 });
    await cli("keys", "keygen", "--out", f("signer"));
    await cli("keys", "add", f("signer.pub"));
    Deno.writeTextFileSync(f("p1.pol"), `version=1\n[deny_path]\n${f("a")}\n`);
    Deno.writeTextFileSync(f("p2.pol"), `version=1\n[deny_path]\n${f("b")}\n`);
    await sign("p1.pol", "p1.b10", 10);
    await sign("p2.pol", "p2.b11", 11);
    Deno.copyFileSync(f("p1.b10"), f("boot.bundle"));
    const myCgroup = Deno.readTextFileSync("/proc/self/cgroup").split("\n")
      .find((l) => l.startsWith("0::"))!.slice(3);
    const runArgs = ["--policy", f("boot.bundle"), "--require-signature"];
    let a: Agent | null = new Agent(runArgs, env);
    try {
      // ---- start: the bundle is applied before the agent says it enforces
      await a.ready();
      match(a.err, /policy applied by uid 0 pid \d+ \(self\): .*boot\.bundle/);
      match(a.err, /agent started, ENFORCE/);
      strictEqual(tryOpen(f("a")), DENIED, "--policy is enforced at start");
      const applyEv = a.events().find((ev: Json) =>
        ev.type === "control_change" && ev.control === "policy"
      );
      strictEqual(applyEv?.caller_source, "self", JSON.stringify(applyEv));
      const cg = Deno.readTextFileSync(`/proc/${a.proc.pid}/cgroup`);
      const own = `${myCgroup === "/" ? "" : myCgroup}/aegisbpf.agent`;
      ok(cg.includes(`0::${own}\n`), `the agent's cgroup is below its starter's: ${cg}`);

      // ---- SIGHUP: unchanged → nothing; changed → applied; broken → logged, old policy stays
      a.proc.kill("SIGHUP");
      await a.waitFor(
        () => /is the applied policy already/.test(a!.err),
        "the no-op SIGHUP",
        30_000,
      );
      Deno.copyFileSync(f("p2.b11"), f("boot.bundle"));
      a.proc.kill("SIGHUP");
      await waitUntil(
        () => tryOpen(f("b")) === DENIED,
        "the changed --policy after SIGHUP",
        30_000,
      );
      strictEqual(tryOpen(f("a")), "ok", "p2 replaced p1");
      const body2 = Deno.readFileSync(f("p2.pol"));
      const sha2 = await sha256(body2);
      await waitUntil(
        () => JSON.parse(Deno.readTextFileSync(e.report)).policy.sha256 === sha2,
        "the report to name the policy the maps hold",
        10_000,
      );
      Deno.writeTextFileSync(f("boot.bundle"), "AEGIS-POLICY-BUNDLE-V2\ngarbage\n");
      a.proc.kill("SIGHUP");
      await a.waitFor(
        () =>
          /SIGHUP: --policy .* could not be applied: .*; the current policy keeps enforcing/.test(
            a!.err,
          ),
        "the refused SIGHUP",
        30_000,
      );
      strictEqual(a.exited, null, "a bad file on SIGHUP does not end the agent");
      strictEqual(tryOpen(f("b")), DENIED, "the current policy keeps enforcing");
      strictEqual((await a.stop()).code, 0);
      a = null;
      let gone = false;
      try {
        Deno.statSync(`/sys/fs/cgroup${own}`);
      } catch {
        gone = true;
      }
      ok(gone, "a clean stop removes the agent's cgroup");

      // ---- a reboot: no pins. A damaged stored bundle refuses the start, nothing attached
      uninstallPins(e.pinRoot);
      await waitUntil(
        () => tryOpen(f("b")) === "ok",
        "nothing enforced once the pins are gone",
        30_000,
      );
      const stored = `${e.stateDir}/policy.bundle-${sha2}`;
      const good = Deno.readFileSync(stored);
      const bad = good.slice();
      bad[bad.length - 2] ^= 1; // the body: no longer what the signature covers
      Deno.writeFileSync(stored, bad);
      a = new Agent(["--require-signature"], env);
      const refused = await a.exit();
      strictEqual(refused.code, 1, a.err);
      match(a.err, /POLICY_RESTORE_FAILED/);
      match(a.err, /policy\.bundle-[0-9a-f]{64}/);
      ok(!pinsExist(e.pinRoot), "nothing of the refused start stays attached");
      strictEqual(tryOpen(f("b")), "ok");

      // ---- the good bundle back: restored and verified before ENFORCE
      Deno.writeFileSync(stored, good);
      a = new Agent(["--require-signature"], env);
      await a.ready();
      match(a.err, /restored the applied policy \(sha256 [0-9a-f]{64}, bundle policy_version 11\)/);
      strictEqual(tryOpen(f("b")), DENIED, "restored after the reboot");
      await a.stop("SIGKILL");

      // ---- a --policy that cannot be applied: refusal; the pins taken over keep p2
      a = new Agent(["--policy", f("p1.pol"), "--require-signature"], env);
      const r2 = await a.exit();
      strictEqual(r2.code, 1, a.err);
      match(a.err, /RUN_POLICY_FAILED/);
      match(a.err, /BUNDLE_REQUIRED|not a signed bundle/);
      ok(pinsExist(e.pinRoot), "the pins it took over stay");
      strictEqual(tryOpen(f("b")), DENIED, "the previous policy keeps enforcing");
      strictEqual(tryOpen(f("a")), "ok", "the refused policy is not applied");
      a = null;
    } finally {
      await cleanupAgent(a, e);
    }
  },
});
