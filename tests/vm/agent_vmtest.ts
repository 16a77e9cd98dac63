/**
 * VM tier: aegisbpf run the way an operator runs it (the development
 * launcher; the compiled binary when AEGIS_VM_AGENT points at it).
 *
 * lsm-on: `run` enforces: a `block add` rule denies with EPERM and a block
 * event; SIGKILL of the agent leaves the file denied; an entry smuggled into
 * the pinned maps while the agent is down is found and removed by the
 * restarted agent (it compares the maps with its stored state), which
 * re-adopts the pins while a concurrent opener of the rule's file never gets
 * through; `uninstall` ends enforcement. The first start arms self-protection
 * (the default): a root tool cannot write the state directory; the restart
 * with --no-self-protect disarms what the killed agent left armed.
 * (The lsm-off refusal is in posture_vmtest.ts.)
 */
import { match, ok, strictEqual } from "node:assert/strict";
import { EMBEDDED } from "../../src/assets/mod.ts";
import { AGENT, Agent, agentEnv, denyInPins, waitUntil } from "../lib/agent.ts";
import { eventually, run, tryOpen } from "../lib/helpers.ts";
const LSM_ON = Deno.env.get("AEGIS_VM_LSM") === "on";

Deno.test("aegisbpf version --json loads the embedded shim in the guest", async () => {
  const r = await run(AGENT, ["version", "--json"]);
  strictEqual(r.code, 0, r.stderr);
  const v = JSON.parse(r.stdout);
  strictEqual(v.shim.loaded, true, v.shim.error);
  strictEqual(v.shim.sha256, EMBEDDED.shim.sha256);
  strictEqual(v.bpf_object.sha256, EMBEDDED.bpfObject.sha256);
});

Deno.test({
  name: "aegisbpf run enforces, survives SIGKILL, re-adopts with no gap, and uninstall ends it",
  ignore: !LSM_ON,
  fn: async () => {
    const paths = agentEnv();
    const { env, dir, pinRoot: root } = paths;
    const denied = `${dir}/denied`;
    Deno.writeTextFileSync(denied, "secret");
    let agent = new Agent([], env);
    try {
      await agent.waitFor(() => agent.err.includes("agent started"), "the agent to start");
      match(agent.err, /agent started, ENFORCE: [^\n]*lsm\/file_open/);

      // a rule through the agent (kept in its state: a restart brings the maps back to it)
      const add = await run(AGENT, ["block", "add", denied], env);
      strictEqual(add.code, 0, add.stderr);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied by the running agent");
      await agent.waitFor(() => agent.out.includes(`"type":"block"`), "a block event");
      const ev = agent.out.split("\n").filter((l) =>
        l.includes(`"type":"block"`)
      ).map((l) => JSON.parse(l))[0];
      strictEqual(ev.action, "BLOCK");
      strictEqual(ev.pid, Deno.pid);
      ok(ev.rule_id >= 0x8000_0000, `a live rule's id: ${ev.rule_id}`);
      // self-protection is on by default: a tool that is not the agent (no deno) cannot
      // write into its state directory (self_protect_vmtest.ts covers every guard)
      match(agent.err, /self-protection armed/);
      const scratch = `${paths.stateDir}/scratch`;
      const guarded = await run("touch", [scratch]);
      ok(guarded.code !== 0, "the default start guards the state directory");
      match(guarded.stderr, /Operation not permitted/);
      const selfLinks = () =>
        [...Deno.readDirSync(`${root}/links`)].filter((l) =>
          l.name.startsWith("aegis_self_")
        )
          .length;
      ok(selfLinks() > 0, "the guard programs are pinned");

      const killed = await agent.stop("SIGKILL");
      strictEqual(killed.signal, "SIGKILL");
      strictEqual(tryOpen(denied), "EPERM/EACCES", "still denied with the agent killed");
      // an edit of the pinned maps behind the agent's back, while it is down
      const smuggled = `${dir}/smuggled`;
      Deno.writeTextFileSync(smuggled, "x");
      await denyInPins(root, smuggled, 99);
      strictEqual(tryOpen(smuggled), "EPERM/EACCES", "the smuggled entry is live");

      // restart while a concurrent opener hammers the file
      const hammer = new Deno.Command("/usr/bin/python3", {
        args: [
          "-c",
          `
import os, sys, time
allowed = denied = 0
end = time.time() + 240
while time.time() < end and not os.path.exists(sys.argv[2]):
    try:
        os.close(os.open(sys.argv[1], os.O_RDONLY)); allowed += 1
    except PermissionError:
        denied += 1
    if denied + allowed == 1:
        open(sys.argv[3], "w").close()
    time.sleep(0.0005)  # still thousands of opens per restart, but the agent gets the vCPU too
print(allowed, denied)
`,
          denied,
          `${dir}/stop`,
          `${dir}/started`,
        ],
        stdout: "piped",
      }).spawn();
      await waitUntil(() => {
        try {
          return Deno.statSync(`${dir}/started`).isFile;
        } catch {
          return false;
        }
      }, "the opener");
      // the restart opts out: it disarms the guards the killed agent left armed
      agent = new Agent(["--no-self-protect"], env);
      // a busy CI machine runs four guests on two cores: the restart (a trial load through
      // the verifier, then re-adopting and comparing the maps) gets a generous deadline
      await agent.waitFor(
        () => agent.err.includes("agent started"),
        "the restarted agent",
        200_000,
      );
      match(agent.err, /re-adopted/);
      // the restart compared the maps with its stored state and repaired them
      match(
        agent.err,
        /the re-adopted rule maps differed from the stored state \(0 missing, 1 extra, 0 changed/,
      );
      strictEqual(tryOpen(smuggled), "ok", "the smuggled entry is gone");
      Deno.writeTextFileSync(`${dir}/stop`, "");
      const [allowed, deniedCount] = new TextDecoder().decode((await hammer.output()).stdout).trim()
        .split(" ").map(Number);
      strictEqual(
        allowed,
        0,
        `opens allowed across kill, restart and repair (denied ${deniedCount})`,
      );
      ok(deniedCount > 10, `the opener ran (${deniedCount} denials)`);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "denied by the restarted agent");
      // --no-self-protect: no guard left, the same tool writes
      const touch = await run("touch", [scratch]);
      strictEqual(touch.code, 0, `no guard with --no-self-protect: ${touch.stderr}`);
      Deno.removeSync(scratch);
      strictEqual(selfLinks(), 0, "the guard programs are unpinned");

      const stopped = await agent.stop("SIGTERM");
      strictEqual(stopped.code, 0, agent.err);
      strictEqual(tryOpen(denied), "EPERM/EACCES", "pins keep enforcing after a clean stop");
      const un = await run(AGENT, ["uninstall"], env);
      strictEqual(un.code, 0, un.stderr);
      match(un.stdout, /links\/aegis_file_open/);
      // the kernel frees an unpinned link from a work queue: detach follows shortly
      strictEqual(await eventually(() => tryOpen(denied)), "ok", "allowed after uninstall");
    } finally {
      try {
        agent.proc.kill("SIGKILL");
      } catch { /* already gone */ }
      await run(AGENT, ["uninstall"], env);
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("aegisbpf run --audit reports an exec in the guest and pins nothing", async () => {
  const e = agentEnv();
  const a = new Agent(["--audit"], e.env);
  try {
    await a.ready();
    if (LSM_ON) match(a.err, /agent started, AUDIT_FALLBACK: [^\n]*lsm\/file_open/);
    await new Deno.Command("/bin/sleep", { args: ["0"] }).output();
    await a.waitFor(
      () => a.events().some((ev) => ev.type === "exec" && ev.comm === "sleep"),
      "the exec event of sleep",
      10_000,
    );
  } finally {
    strictEqual((await a.stop("SIGTERM")).code, 0, "clean stop on SIGTERM");
    let pinned = true;
    try {
      Deno.statSync(e.pinRoot);
    } catch {
      pinned = false;
    }
    if (pinned) await run(AGENT, ["uninstall"], e.env);
    Deno.removeSync(e.dir, { recursive: true });
    strictEqual(pinned, false, "audit mode pins nothing of its own");
  }
});
